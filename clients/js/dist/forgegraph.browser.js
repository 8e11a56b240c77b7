var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/documents.ts
var NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
var CHANGE_FIELDS = "type table id record old_record cursor";
var TABLE_CHANGED = `subscription ($table: String!, $where: JSON, $since: String) {
  tableChanged(table: $table, where: $where, since: $since) { ${CHANGE_FIELDS} }
}`;
var CHANGE_CURSOR = "query { changeCursor }";
var TABLE_FIELDS = "query ($name: String!) {\n  __type(name: $name) { fields { name type { kind ofType { kind } } } }\n}";
function checkedName(name, what = "table") {
  if (typeof name !== "string" || !NAME.test(name) || name.startsWith("__")) {
    throw new TypeError(`${JSON.stringify(name)} is not a valid GraphQL name for a ${what}`);
  }
  return name;
}
function selection(columns) {
  if (columns.length === 0) throw new TypeError("select at least one column");
  return columns.map((c) => checkedName(c, "column")).join(" ");
}
function declare(types, given) {
  const names = Object.keys(types).filter((n) => given[n] !== void 0);
  const declared = names.map((n) => `$${n}: ${types[n]}`).join(", ");
  const passed = names.map((n) => `${n}: $${n}`).join(", ");
  return [declared ? `(${declared})` : "", passed ? `(${passed})` : ""];
}
function readArguments(table) {
  return {
    where: `${table}_bool_exp`,
    order_by: `[${table}_order_by!]`,
    limit: "Int",
    offset: "Int"
  };
}
function select(table, columns, given, operation = "query") {
  const [declared, passed] = declare(readArguments(table), given);
  return `${operation} ${declared} { ${table}${passed} { ${selection(columns)} } }`;
}
function insert(table, columns, given) {
  const [declared, passed] = declare(
    { objects: `[${table}_insert_input!]!`, on_conflict: `${table}_on_conflict` },
    given
  );
  return `mutation ${declared} { insert_${table}${passed} { returning { ${selection(columns)} } } }`;
}
function update(table, columns, given) {
  const types = { where: `${table}_bool_exp!`, _set: `${table}_set_input`, _inc: `${table}_inc_input` };
  const [declared, passed] = declare(types, given);
  return `mutation ${declared} { update_${table}${passed} { returning { ${selection(columns)} } } }`;
}
function remove(table, columns) {
  return `mutation ($where: ${table}_bool_exp!) { delete_${table}(where: $where) { returning { ${selection(columns)} } } }`;
}
var COLUMN_AGGREGATES = [
  "sum",
  "avg",
  "min",
  "max",
  "stddev",
  "stddev_pop",
  "stddev_samp",
  "var_pop",
  "var_samp",
  "variance"
];
function aggregate(table, request, given) {
  const [declared, passed] = declare({ where: `${table}_bool_exp` }, given);
  const fields = [];
  const asked = COLUMN_AGGREGATES.filter((fn) => request[fn] !== void 0);
  let count = request.count;
  if (count === void 0 && asked.length === 0) count = true;
  if (count === true) fields.push("count");
  else if (typeof count === "object" && count !== null) {
    const args = [];
    if (count.columns?.length) args.push(`columns: [${count.columns.map((c) => checkedName(c, "column")).join(", ")}]`);
    if (count.distinct !== void 0) args.push(`distinct: ${count.distinct ? "true" : "false"}`);
    fields.push(args.length ? `count(${args.join(", ")})` : "count");
  }
  for (const fn of asked) {
    const columns = request[fn];
    if (!Array.isArray(columns)) throw new TypeError(`aggregate ${fn}: expected a list of columns`);
    fields.push(`${fn} { ${selection(columns)} }`);
  }
  return `query ${declared} { ${table}_aggregate${passed} { aggregate { ${fields.join(" ")} } } }`;
}

// src/errors.ts
var ForgegraphError = class _ForgegraphError extends Error {
  constructor(message, code = null, errors = []) {
    super(message);
    this.name = "ForgegraphError";
    this.code = code;
    this.errors = errors;
  }
  /** The error for a GraphQL `errors` list (as in a response or an `error` message). */
  static fromGraphQL(errors) {
    const listed = (Array.isArray(errors) ? errors : [errors]).filter(
      (e) => typeof e === "object" && e !== null
    );
    const first = listed[0] ?? { message: "unknown error" };
    const code = first.extensions?.code;
    return new _ForgegraphError(
      String(first.message ?? "unknown error"),
      typeof code === "string" ? code : null,
      listed
    );
  }
};
var ConnectionFailed = class extends ForgegraphError {
  constructor(message) {
    super(message, null);
    this.name = "ConnectionFailed";
  }
};

// node_modules/graphql-ws/dist/common-CGW11Fyb.js
function extendedTypeof(val) {
  if (val === null) {
    return "null";
  }
  if (Array.isArray(val)) {
    return "array";
  }
  return typeof val;
}
function isObject(val) {
  return extendedTypeof(val) === "object";
}
function areGraphQLFormattedErrors(obj) {
  return Array.isArray(obj) && // must be at least one error
  obj.length > 0 && // error has at least a message
  obj.every((ob) => "message" in ob);
}
function limitCloseReason(reason, whenTooLong) {
  return reason.length < 124 ? reason : whenTooLong;
}
var GRAPHQL_TRANSPORT_WS_PROTOCOL = "graphql-transport-ws";
var CloseCode = /* @__PURE__ */ ((CloseCode2) => {
  CloseCode2[CloseCode2["InternalServerError"] = 4500] = "InternalServerError";
  CloseCode2[CloseCode2["InternalClientError"] = 4005] = "InternalClientError";
  CloseCode2[CloseCode2["BadRequest"] = 4400] = "BadRequest";
  CloseCode2[CloseCode2["BadResponse"] = 4004] = "BadResponse";
  CloseCode2[CloseCode2["Unauthorized"] = 4401] = "Unauthorized";
  CloseCode2[CloseCode2["Forbidden"] = 4403] = "Forbidden";
  CloseCode2[CloseCode2["SubprotocolNotAcceptable"] = 4406] = "SubprotocolNotAcceptable";
  CloseCode2[CloseCode2["ConnectionInitialisationTimeout"] = 4408] = "ConnectionInitialisationTimeout";
  CloseCode2[CloseCode2["ConnectionAcknowledgementTimeout"] = 4504] = "ConnectionAcknowledgementTimeout";
  CloseCode2[CloseCode2["SubscriberAlreadyExists"] = 4409] = "SubscriberAlreadyExists";
  CloseCode2[CloseCode2["TooManyInitialisationRequests"] = 4429] = "TooManyInitialisationRequests";
  return CloseCode2;
})(CloseCode || {});
var MessageType = /* @__PURE__ */ ((MessageType2) => {
  MessageType2["ConnectionInit"] = "connection_init";
  MessageType2["ConnectionAck"] = "connection_ack";
  MessageType2["Ping"] = "ping";
  MessageType2["Pong"] = "pong";
  MessageType2["Subscribe"] = "subscribe";
  MessageType2["Next"] = "next";
  MessageType2["Error"] = "error";
  MessageType2["Complete"] = "complete";
  return MessageType2;
})(MessageType || {});
function validateMessage(val) {
  if (!isObject(val)) {
    throw new Error(
      `Message is expected to be an object, but got ${extendedTypeof(val)}`
    );
  }
  if (!val.type) {
    throw new Error(`Message is missing the 'type' property`);
  }
  if (typeof val.type !== "string") {
    throw new Error(
      `Message is expects the 'type' property to be a string, but got ${extendedTypeof(
        val.type
      )}`
    );
  }
  switch (val.type) {
    case "connection_init":
    case "connection_ack":
    case "ping":
    case "pong": {
      if (val.payload != null && !isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object or nullish or missing, but got "${val.payload}"`
        );
      }
      break;
    }
    case "subscribe": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      if (typeof val.payload.query !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'query' property to be a string, but got ${extendedTypeof(
            val.payload.query
          )}`
        );
      }
      if (val.payload.variables != null && !isObject(val.payload.variables)) {
        throw new Error(
          `"${val.type}" message payload expects the 'variables' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.variables
          )}`
        );
      }
      if (val.payload.operationName != null && extendedTypeof(val.payload.operationName) !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'operationName' property to be a string or nullish or missing, but got ${extendedTypeof(
            val.payload.operationName
          )}`
        );
      }
      if (val.payload.extensions != null && !isObject(val.payload.extensions)) {
        throw new Error(
          `"${val.type}" message payload expects the 'extensions' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.extensions
          )}`
        );
      }
      break;
    }
    case "next": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      break;
    }
    case "error": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!areGraphQLFormattedErrors(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an array of GraphQL errors, but got ${JSON.stringify(
            val.payload
          )}`
        );
      }
      break;
    }
    case "complete": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      break;
    }
    default:
      throw new Error(`Invalid message 'type' property "${val.type}"`);
  }
  return val;
}
function parseMessage(data, reviver) {
  return validateMessage(
    typeof data === "string" ? JSON.parse(data, reviver) : data
  );
}
function stringifyMessage(msg, replacer) {
  validateMessage(msg);
  return JSON.stringify(msg, replacer);
}

// node_modules/graphql-ws/dist/client.js
function createClient(options) {
  const {
    url,
    connectionParams,
    lazy = true,
    onNonLazyError = console.error,
    lazyCloseTimeout: lazyCloseTimeoutMs = 0,
    keepAlive = 0,
    disablePong,
    connectionAckWaitTimeout = 0,
    retryAttempts = 5,
    retryWait = async function randomisedExponentialBackoff(retries2) {
      const retryDelaySeconds = Math.pow(2, retries2);
      await new Promise(
        (resolve) => setTimeout(
          resolve,
          retryDelaySeconds * 1e3 + // add random timeout from 300ms to 3s
          Math.floor(Math.random() * (3e3 - 300) + 300)
        )
      );
    },
    shouldRetry = isLikeCloseEvent,
    on,
    webSocketImpl,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID = function generateUUID() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
        const r = Math.random() * 16 | 0, v = c == "x" ? r : r & 3 | 8;
        return v.toString(16);
      });
    },
    jsonMessageReplacer: replacer,
    jsonMessageReviver: reviver
  } = options;
  let ws;
  if (webSocketImpl) {
    if (!isWebSocket(webSocketImpl)) {
      throw new Error("Invalid WebSocket implementation provided");
    }
    ws = webSocketImpl;
  } else if (typeof WebSocket !== "undefined") {
    ws = WebSocket;
  } else if (typeof global !== "undefined") {
    ws = global.WebSocket || // @ts-expect-error: Support more browsers
    global.MozWebSocket;
  } else if (typeof window !== "undefined") {
    ws = window.WebSocket || // @ts-expect-error: Support more browsers
    window.MozWebSocket;
  }
  if (!ws)
    throw new Error(
      "WebSocket implementation missing; on Node you can `import WebSocket from 'ws';` and pass `webSocketImpl: WebSocket` to `createClient`"
    );
  const WebSocketImpl = ws;
  const emitter = (() => {
    const message = /* @__PURE__ */ (() => {
      const listeners2 = {};
      return {
        on(id, listener) {
          listeners2[id] = listener;
          return () => {
            delete listeners2[id];
          };
        },
        emit(message2) {
          if ("id" in message2) listeners2[message2.id]?.(message2);
        }
      };
    })();
    const listeners = {
      connecting: on?.connecting ? [on.connecting] : [],
      opened: on?.opened ? [on.opened] : [],
      connected: on?.connected ? [on.connected] : [],
      ping: on?.ping ? [on.ping] : [],
      pong: on?.pong ? [on.pong] : [],
      message: on?.message ? [message.emit, on.message] : [message.emit],
      closed: on?.closed ? [on.closed] : [],
      error: on?.error ? [on.error] : []
    };
    return {
      onMessage: message.on,
      on(event, listener) {
        const l = listeners[event];
        l.push(listener);
        return () => {
          const i = l.indexOf(listener);
          if (i > -1) {
            l.splice(i, 1);
          }
        };
      },
      emit(event, ...args) {
        for (const listener of [...listeners[event]]) {
          listener(...args);
        }
      }
    };
  })();
  function errorOrClosed(cb) {
    const listening = [
      // errors are fatal and more critical than close events, throw them first
      emitter.on("error", (err) => {
        listening.forEach((unlisten) => unlisten());
        cb(err);
      }),
      // closes can be graceful and not fatal, throw them second (if error didnt throw)
      emitter.on("closed", (event) => {
        listening.forEach((unlisten) => unlisten());
        cb(event);
      })
    ];
    return () => listening.forEach((unlisten) => unlisten());
  }
  let connecting, locks = 0, lazyCloseTimeout, retrying = false, retries = 0, disposed = false;
  async function connect() {
    clearTimeout(lazyCloseTimeout);
    const [socket, throwOnClose] = await (connecting ?? (connecting = new Promise(
      (connected, denied) => (async () => {
        if (retrying) {
          await retryWait(retries);
          if (!locks) {
            connecting = void 0;
            return denied({ code: 1e3, reason: "All Subscriptions Gone" });
          }
          retries++;
        }
        emitter.emit("connecting", retrying);
        const socket2 = new WebSocketImpl(
          typeof url === "function" ? await url() : url,
          GRAPHQL_TRANSPORT_WS_PROTOCOL
        );
        let connectionAckTimeout, queuedPing;
        function enqueuePing() {
          if (isFinite(keepAlive) && keepAlive > 0) {
            clearTimeout(queuedPing);
            queuedPing = setTimeout(() => {
              if (socket2.readyState === WebSocketImpl.OPEN) {
                socket2.send(stringifyMessage({ type: MessageType.Ping }));
                emitter.emit("ping", false, void 0);
              }
            }, keepAlive);
          }
        }
        errorOrClosed((errOrEvent) => {
          connecting = void 0;
          clearTimeout(connectionAckTimeout);
          clearTimeout(queuedPing);
          denied(errOrEvent);
          if (errOrEvent instanceof TerminatedCloseEvent) {
            socket2.close(4499, "Terminated");
            socket2.onerror = null;
            socket2.onclose = null;
          }
        });
        socket2.onerror = (err) => emitter.emit("error", err);
        socket2.onclose = (event) => emitter.emit("closed", event);
        socket2.onopen = async () => {
          try {
            emitter.emit("opened", socket2);
            const payload = typeof connectionParams === "function" ? await connectionParams() : connectionParams;
            if (socket2.readyState !== WebSocketImpl.OPEN) return;
            socket2.send(
              stringifyMessage(
                payload ? {
                  type: MessageType.ConnectionInit,
                  payload
                } : {
                  type: MessageType.ConnectionInit
                  // payload is completely absent if not provided
                },
                replacer
              )
            );
            if (isFinite(connectionAckWaitTimeout) && connectionAckWaitTimeout > 0) {
              connectionAckTimeout = setTimeout(() => {
                socket2.close(
                  CloseCode.ConnectionAcknowledgementTimeout,
                  "Connection acknowledgement timeout"
                );
              }, connectionAckWaitTimeout);
            }
            enqueuePing();
          } catch (err) {
            emitter.emit("error", err);
            socket2.close(
              CloseCode.InternalClientError,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Internal client error"
              )
            );
          }
        };
        let acknowledged = false;
        socket2.onmessage = ({ data }) => {
          try {
            const message = parseMessage(data, reviver);
            emitter.emit("message", message);
            if (message.type === "ping" || message.type === "pong") {
              emitter.emit(message.type, true, message.payload);
              if (message.type === "pong") {
                enqueuePing();
              } else if (!disablePong) {
                socket2.send(
                  stringifyMessage(
                    message.payload ? {
                      type: MessageType.Pong,
                      payload: message.payload
                    } : {
                      type: MessageType.Pong
                      // payload is completely absent if not provided
                    },
                    replacer
                  )
                );
                emitter.emit("pong", false, message.payload);
              }
              return;
            }
            if (acknowledged) return;
            if (message.type !== MessageType.ConnectionAck)
              throw new Error(
                `First message cannot be of type ${message.type}`
              );
            clearTimeout(connectionAckTimeout);
            acknowledged = true;
            emitter.emit("connected", socket2, message.payload, retrying);
            retrying = false;
            retries = 0;
            const throwOnClose2 = new Promise(
              (_, reject) => errorOrClosed(reject)
            );
            throwOnClose2.catch(() => {
            });
            connected([socket2, throwOnClose2]);
          } catch (err) {
            socket2.onmessage = null;
            emitter.emit("error", err);
            socket2.close(
              CloseCode.BadResponse,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Bad response"
              )
            );
          }
        };
      })()
    )));
    if (socket.readyState === WebSocketImpl.CLOSING) await throwOnClose;
    let release = () => {
    };
    const released = new Promise((resolve) => release = resolve);
    return [
      socket,
      release,
      // resolves on release or rejects on error/close, whichever comes first.
      // not racing with throwOnClose on purpose, it lives as long as the socket
      // and every race would leak memory per operation
      new Promise((resolve, reject) => {
        const unlisten = errorOrClosed(reject);
        if (socket.readyState !== WebSocketImpl.OPEN)
          throwOnClose.catch(reject);
        released.then(() => {
          unlisten();
          if (!locks) {
            const complete = () => socket.close(1e3, "Normal Closure");
            if (isFinite(lazyCloseTimeoutMs) && lazyCloseTimeoutMs > 0) {
              clearTimeout(lazyCloseTimeout);
              lazyCloseTimeout = setTimeout(() => {
                if (!locks && socket.readyState === WebSocketImpl.OPEN)
                  complete();
              }, lazyCloseTimeoutMs);
            } else {
              complete();
            }
          }
          resolve();
        });
      })
    ];
  }
  function shouldRetryConnectOrThrow(errOrCloseEvent) {
    if (isLikeCloseEvent(errOrCloseEvent) && (isFatalInternalCloseCode(errOrCloseEvent.code) || [
      CloseCode.InternalServerError,
      CloseCode.InternalClientError,
      CloseCode.BadRequest,
      CloseCode.BadResponse,
      CloseCode.Unauthorized,
      // CloseCode.Forbidden, might grant access out after retry
      CloseCode.SubprotocolNotAcceptable,
      // CloseCode.ConnectionInitialisationTimeout, might not time out after retry
      // CloseCode.ConnectionAcknowledgementTimeout, might not time out after retry
      CloseCode.SubscriberAlreadyExists,
      CloseCode.TooManyInitialisationRequests
      // 4499, // Terminated, probably because the socket froze, we want to retry
    ].includes(errOrCloseEvent.code)))
      throw errOrCloseEvent;
    if (disposed) return false;
    if (isLikeCloseEvent(errOrCloseEvent) && errOrCloseEvent.code === 1e3)
      return locks > 0;
    if (!retryAttempts || retries >= retryAttempts) throw errOrCloseEvent;
    if (!shouldRetry(errOrCloseEvent)) throw errOrCloseEvent;
    return retrying = true;
  }
  if (!lazy) {
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [, , throwOnClose] = await connect();
          await throwOnClose;
        } catch (errOrCloseEvent) {
          try {
            if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
          } catch (errOrCloseEvent2) {
            return onNonLazyError?.(errOrCloseEvent2);
          }
        }
      }
    })();
  }
  function subscribe(payload, sink) {
    const id = generateID(payload);
    let done = false, errored = false, releaser = () => {
      locks--;
      done = true;
    };
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [socket, release, waitForReleaseOrThrowOnClose] = await connect();
          if (done) {
            waitForReleaseOrThrowOnClose.catch(() => {
            });
            return release();
          }
          const unlisten = emitter.onMessage(id, (message) => {
            switch (message.type) {
              case MessageType.Next: {
                sink.next(message.payload);
                return;
              }
              case MessageType.Error: {
                errored = true, done = true;
                sink.error(message.payload);
                releaser();
                return;
              }
              case MessageType.Complete: {
                done = true;
                releaser();
                return;
              }
            }
          });
          socket.send(
            stringifyMessage(
              {
                id,
                type: MessageType.Subscribe,
                payload
              },
              replacer
            )
          );
          releaser = () => {
            if (!done && socket.readyState === WebSocketImpl.OPEN)
              socket.send(
                stringifyMessage(
                  {
                    id,
                    type: MessageType.Complete
                  },
                  replacer
                )
              );
            locks--;
            done = true;
            release();
          };
          await waitForReleaseOrThrowOnClose.finally(unlisten);
          return;
        } catch (errOrCloseEvent) {
          if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
        }
      }
    })().then(() => {
      if (!errored) sink.complete();
    }).catch((err) => {
      sink.error(err);
    });
    return () => {
      if (!done) releaser();
    };
  }
  return {
    on: emitter.on,
    subscribe,
    iterate(request) {
      const pending = [];
      const deferred = {
        done: false,
        error: null,
        resolve: () => {
        }
      };
      const dispose = subscribe(request, {
        next(val) {
          pending.push(val);
          deferred.resolve();
        },
        error(err) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        },
        complete() {
          deferred.done = true;
          deferred.resolve();
        }
      });
      const iterator = (async function* iterator2() {
        for (; ; ) {
          if (!pending.length) {
            await new Promise((resolve) => deferred.resolve = resolve);
          }
          while (pending.length) {
            yield pending.shift();
          }
          if (deferred.error) {
            throw deferred.error;
          }
          if (deferred.done) {
            return;
          }
        }
      })();
      iterator.throw = async (err) => {
        if (!deferred.done) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        }
        return { done: true, value: void 0 };
      };
      iterator.return = async () => {
        dispose();
        return { done: true, value: void 0 };
      };
      return iterator;
    },
    async dispose() {
      disposed = true;
      if (connecting) {
        const [socket] = await connecting;
        socket.close(1e3, "Normal Closure");
      }
    },
    terminate() {
      if (connecting) {
        emitter.emit("closed", new TerminatedCloseEvent());
      }
    }
  };
}
var TerminatedCloseEvent = class extends Error {
  constructor() {
    super(...arguments);
    __publicField(this, "name", "TerminatedCloseEvent");
    __publicField(this, "message", "4499: Terminated");
    __publicField(this, "code", 4499);
    __publicField(this, "reason", "Terminated");
    __publicField(this, "wasClean", false);
  }
};
function isLikeCloseEvent(val) {
  return isObject(val) && "code" in val && "reason" in val;
}
function isFatalInternalCloseCode(code) {
  if ([
    1e3,
    // Normal Closure is not an erroneous close code
    1001,
    // Going Away
    1006,
    // Abnormal Closure
    1005,
    // No Status Received
    1012,
    // Service Restart
    1013,
    // Try Again Later
    1014
    // Bad Gateway
  ].includes(code))
    return false;
  return code >= 1e3 && code <= 1999;
}
function isWebSocket(val) {
  return typeof val === "function" && "constructor" in val && "CLOSED" in val && "CLOSING" in val && "CONNECTING" in val && "OPEN" in val;
}

// src/realtime.ts
var DEFAULT_BACKOFF = { initial: 100, maximum: 5e3, factor: 2, jitter: 0.5 };
function backoffDelay(backoff, attempt) {
  const base = Math.min(backoff.maximum, backoff.initial * Math.pow(backoff.factor, Math.min(attempt, 32)));
  return base * (1 - backoff.jitter * Math.random());
}
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
var FORBIDDEN = 4403;
var FINAL_CODES = {
  4400: "validation-failed",
  4401: "invalid-jwt",
  4403: "invalid-jwt",
  4409: "validation-failed",
  4429: "validation-failed",
  4406: "validation-failed"
};
function isClose(value) {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}
function asError(error) {
  if (error instanceof ForgegraphError) return error;
  if (isClose(error)) {
    const code = FINAL_CODES[error.code] ?? null;
    const message2 = `the server closed the connection with ${error.code}` + (error.reason ? `: ${error.reason}` : "");
    return code ? new ForgegraphError(message2, code) : new ConnectionFailed(message2);
  }
  if (Array.isArray(error)) return ForgegraphError.fromGraphQL(error);
  if (error instanceof Error) return new ConnectionFailed(error.message);
  const message = error?.message;
  return new ConnectionFailed(typeof message === "string" && message ? message : "the connection failed");
}
var Realtime = class {
  constructor(options) {
    this.options = options;
    /** Sockets opened and acknowledged so far. */
    this.opened = 0;
    this.ws = null;
    this.acknowledged = false;
    this.refusedInARow = 0;
    this.lastVerdict = null;
  }
  subscribe(payload, sink) {
    return this.client().subscribe(payload, sink);
  }
  async close() {
    const ws = this.ws;
    this.ws = null;
    if (ws) await ws.dispose();
  }
  client() {
    if (this.ws) return this.ws;
    const { url, headers, webSocketImpl, backoff, on } = this.options;
    this.ws = createClient({
      url,
      webSocketImpl,
      lazy: true,
      retryAttempts: Infinity,
      connectionParams: async () => ({ headers: await headers() }),
      retryWait: (retries) => sleep(backoffDelay(backoff, retries)),
      shouldRetry: (event) => this.shouldRetry(event),
      on: {
        connecting: () => {
          this.acknowledged = false;
          on?.connecting?.();
        },
        connected: () => {
          this.acknowledged = true;
          this.refusedInARow = 0;
          this.opened += 1;
          on?.connected?.();
        },
        closed: (event) => on?.closed?.(event)
      }
    });
    return this.ws;
  }
  /** Asked once per subscription for the same close: decide once per close. */
  shouldRetry(event) {
    const verdict = this.lastVerdict;
    if (verdict !== null && verdict.event === event) return verdict.retry;
    let retry = true;
    if (isClose(event) && event.code === FORBIDDEN) {
      if (!this.options.refreshable) retry = false;
      else if (!this.acknowledged) retry = ++this.refusedInARow < 2;
    } else if (isClose(event) && event.code in FINAL_CODES) {
      retry = false;
    }
    this.lastVerdict = { event, retry };
    return retry;
  }
};

// src/client.ts
function endpoints(url) {
  const parsed = new URL(url);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  let path = parsed.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/graphql")) path += "/graphql";
  parsed.pathname = path;
  parsed.hash = "";
  const http = parsed.toString();
  parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
  return { http, ws: parsed.toString() };
}
function createClient2(url, options = {}) {
  return new Client(url, options);
}
var Client = class {
  constructor(url, options = {}) {
    this.columnCache = /* @__PURE__ */ new Map();
    this.open = /* @__PURE__ */ new Set();
    const { http, ws } = endpoints(url);
    this.httpUrl = http;
    this.wsUrl = ws;
    this.options = options;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.realtime = new Realtime({
      url: ws,
      headers: () => this.headers(),
      refreshable: options.getToken !== void 0,
      webSocketImpl: options.webSocketImpl,
      backoff: this.backoff,
      on: options.on
    });
  }
  table(name) {
    return new Table(this, checkedName(name));
  }
  /** The credentials of a request or a socket, asking `getToken` afresh. */
  async headers() {
    const headers = { ...this.options.headers };
    const token = this.options.getToken ? await this.options.getToken() : this.options.token;
    if (token) headers["Authorization"] = `Bearer ${token}`;
    if (this.options.adminSecret !== void 0) headers["X-Admin-Secret"] = this.options.adminSecret;
    return headers;
  }
  /** Run any GraphQL query or mutation; its `data`, or a thrown ForgegraphError. */
  async execute(query, variables) {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    const body = { query };
    if (variables && Object.keys(variables).length) body.variables = variables;
    let response;
    try {
      response = await fetcher(this.httpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", ...await this.headers() },
        body: JSON.stringify(body)
      });
    } catch (error) {
      throw new ConnectionFailed(`cannot reach ${this.httpUrl}: ${error?.message ?? error}`);
    }
    let payload;
    try {
      payload = await response.json();
    } catch {
      throw new ForgegraphError(`${this.httpUrl} answered ${response.status} with a body that is not JSON`);
    }
    if (payload?.errors?.length) throw ForgegraphError.fromGraphQL(payload.errors);
    if (!response.ok || typeof payload?.data !== "object" || payload.data === null) {
      throw new ForgegraphError(`${this.httpUrl} answered ${response.status} without data`);
    }
    return payload.data;
  }
  /** The newest change cursor now: a subscription with `since` set to it misses nothing after. */
  async changeCursor() {
    const data = await this.execute(CHANGE_CURSOR);
    return String(data.changeCursor);
  }
  /** The table's columns this client's role may read (learned once, by introspection). */
  columns(table) {
    let known = this.columnCache.get(table);
    if (!known) {
      known = this.introspect(table);
      this.columnCache.set(table, known);
      known.catch(() => this.columnCache.delete(table));
    }
    return known;
  }
  async introspect(table) {
    const data = await this.execute(TABLE_FIELDS, { name: table });
    const fields = data.__type?.fields;
    if (!fields?.length) {
      throw new ForgegraphError(`table ${JSON.stringify(table)} does not exist or is not available to this role`, "validation-failed");
    }
    const leaf = (t) => t.kind === "NON_NULL" ? t.ofType?.kind : t.kind;
    return fields.filter((f) => leaf(f.type) === "SCALAR" || leaf(f.type) === "ENUM").map((f) => f.name);
  }
  /** Keep `stop` until it is called or the client closes; returns `stop`, untracking itself. */
  track(stop) {
    const tracked = () => {
      this.open.delete(tracked);
      stop();
    };
    this.open.add(tracked);
    return tracked;
  }
  /** End every subscription and live query, and close the socket. */
  async close() {
    for (const stop of [...this.open]) stop();
    await this.realtime.close();
  }
};
function defined(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== void 0));
}
var Table = class {
  constructor(client, name) {
    this.client = client;
    this.name = name;
  }
  columns(columns) {
    return columns ?? this.client.columns(this.name);
  }
  /** Rows; `where` and `orderBy` in the Hasura dialect (`{id: {_gt: 3}}`, `{id: "desc"}`). */
  async select(options = {}) {
    const variables = defined({
      where: options.where,
      order_by: options.orderBy,
      limit: options.limit,
      offset: options.offset
    });
    const query = select(this.name, await this.columns(options.columns), variables);
    const data = await this.client.execute(query, variables);
    return data[this.name];
  }
  /** The row whose primary key is `pk` (`{id: 3}`), or null. */
  async byPk(pk, options = {}) {
    const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
    const rows = await this.select({ where, limit: 1, columns: options.columns });
    return rows[0] ?? null;
  }
  /** Insert one row or several, in one transaction; the rows as stored. */
  async insert(objects, options = {}) {
    const variables = defined({
      objects: Array.isArray(objects) ? objects : [objects],
      on_conflict: options.onConflict && { update_columns: [], ...options.onConflict }
    });
    const query = insert(this.name, await this.columns(options.returning), variables);
    return this.mutate(`insert_${this.name}`, query, variables);
  }
  /** Set `set` (and add `inc`) on every row matching `where`; the rows after the change. */
  async update(where, set, options = {}) {
    const variables = defined({ where, _set: set, _inc: options.inc });
    const query = update(this.name, await this.columns(options.returning), variables);
    return this.mutate(`update_${this.name}`, query, variables);
  }
  /** Update the row whose primary key is `pk`; the row after the change, or null when there is none. */
  async updateByPk(pk, set, options = {}) {
    const where = Object.fromEntries(Object.entries(pk).map(([k, v]) => [k, { _eq: v }]));
    const rows = await this.update(where, set, options);
    return rows[0] ?? null;
  }
  /** Delete every row matching `where` (`{}` matches all); the rows as they were. */
  async delete(where, options = {}) {
    const query = remove(this.name, await this.columns(options.returning));
    return this.mutate(`delete_${this.name}`, query, { where });
  }
  /** `count` (default), `sum`, `avg`, `min`, `max`, ... of the rows matching `where`. */
  async aggregate(options = {}) {
    const { where, ...request } = options;
    const variables = defined({ where });
    const query = aggregate(this.name, request, variables);
    const data = await this.client.execute(query, variables);
    return data[`${this.name}_aggregate`].aggregate;
  }
  async mutate(field, query, variables) {
    const data = await this.client.execute(query, variables);
    return data[field].returning;
  }
  /**
   * Call `callback(event)` for each change of this table, in cursor order, exactly once.
   *
   * Without `since`, starts from the server's newest cursor (`changeCursor`),
   * read first: every change committed after `unsubscribe.ready` resolves is
   * delivered, even across a dropped connection before the first event. Drops
   * are retried (backoff) and resumed from the last cursor delivered; what
   * retrying cannot fix (a refused table or filter, `invalid-cursor`, an
   * invalid token) ends the subscription and goes to `onError`.
   */
  subscribe(callback, options = {}) {
    const subscription = new ChangeSubscription(this.client, this.name, callback, options);
    const stop = this.client.track(() => subscription.stop());
    const unsubscribe = (() => stop());
    Object.defineProperty(unsubscribe, "cursor", { get: () => subscription.cursor });
    Object.defineProperty(unsubscribe, "ready", { value: subscription.ready });
    return unsubscribe;
  }
  /**
   * A live query: `callback(rows)` with the result of `select(options)` at once,
   * and again whenever a committed change alters it. Returns `unsubscribe()`.
   */
  live(options, callback) {
    let stopped = false;
    let dispose = null;
    const onError = options.onError ?? ((error) => console.error(`forgegraph: live query on ${this.name} ended:`, error));
    const variables = defined({
      where: options.where,
      order_by: options.orderBy,
      limit: options.limit,
      offset: options.offset
    });
    (async () => {
      const columns = await this.columns(options.columns);
      if (stopped) return;
      const query = select(this.name, columns, variables, "subscription");
      dispose = this.client.realtime.subscribe(
        { query, variables },
        {
          next: (result) => {
            if (stopped) return;
            if (result.errors?.length) {
              stopped = true;
              dispose?.();
              onError(ForgegraphError.fromGraphQL(result.errors));
              return;
            }
            const rows = result.data?.[this.name] ?? [];
            try {
              callback(rows);
            } catch (error) {
              console.error(`forgegraph: a live query callback for ${this.name} threw`, error);
            }
          },
          error: (error) => {
            if (stopped) return;
            stopped = true;
            onError(asError(error));
          },
          complete: () => {
          }
        }
      );
    })().catch((error) => {
      if (!stopped) {
        stopped = true;
        onError(asError(error));
      }
    });
    return this.client.track(() => {
      stopped = true;
      dispose?.();
    });
  }
};
var ChangeSubscription = class {
  constructor(client, table, callback, options) {
    this.client = client;
    this.callback = callback;
    this.options = options;
    /** The last cursor delivered (as a number, for ordering). */
    this.last = null;
    this.lastText = null;
    this.stopped = false;
    this.dispose = null;
    this.delivering = Promise.resolve();
    this.payload = { query: TABLE_CHANGED, variables: defined({ table, where: options.where }) };
    this.ready = this.start();
    this.ready.catch(() => {
    });
  }
  get cursor() {
    return this.lastText ?? this.payload.variables.since ?? null;
  }
  async start() {
    let since = this.options.since;
    if (since === void 0) {
      since = await this.startingCursor();
    }
    if (this.stopped) return;
    this.payload.variables.since = since;
    try {
      this.dispose = this.client.realtime.subscribe(this.payload, {
        next: (result) => this.next(result),
        error: (error) => this.fail(asError(error)),
        complete: () => {
          this.stopped = true;
        }
      });
    } catch (error) {
      const failure = new ForgegraphError(error?.message ?? String(error));
      this.fail(failure);
      throw failure;
    }
  }
  /** `changeCursor`, retried while the server cannot be reached; other errors end the subscription. */
  async startingCursor() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.client.changeCursor();
      } catch (error) {
        if (!(error instanceof ConnectionFailed) || this.stopped) {
          this.fail(error);
          throw error;
        }
        await sleep(backoffDelay(this.client.backoff, attempt));
      }
    }
  }
  next(result) {
    if (this.stopped) return;
    if (result.errors?.length) {
      this.fail(ForgegraphError.fromGraphQL(result.errors));
      return;
    }
    const data = result.data?.tableChanged;
    if (!data) return;
    const cursor = String(data.cursor);
    if (!/^\d+$/.test(cursor)) {
      this.fail(new ForgegraphError(`the server sent a cursor that is not decimal digits: ${JSON.stringify(cursor)}`));
      return;
    }
    const position = BigInt(cursor);
    if (this.last !== null && position <= this.last) return;
    this.last = position;
    this.lastText = cursor;
    this.payload.variables.since = cursor;
    const event = {
      type: data.type,
      table: data.table,
      record: data.record ?? null,
      id: data.id ?? null,
      cursor,
      old_record: data.old_record ?? null
    };
    this.delivering = this.delivering.then(async () => {
      if (this.stopped) return;
      try {
        await this.callback(event);
      } catch (error) {
        console.error(`forgegraph: a callback threw on cursor ${cursor}`, error);
      }
    });
  }
  fail(error) {
    if (this.stopped) return;
    this.stopped = true;
    this.dispose?.();
    const report = this.options.onError ?? ((e) => console.error("forgegraph: subscription ended:", e));
    this.delivering = this.delivering.then(() => report(error));
  }
  stop() {
    this.stopped = true;
    this.dispose?.();
    this.dispose = null;
  }
};
export {
  Client,
  ConnectionFailed,
  DEFAULT_BACKOFF,
  ForgegraphError,
  Table,
  createClient2 as createClient,
  endpoints
};
