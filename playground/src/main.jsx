import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './style.css';
import { createRoot } from 'react-dom/client';
import { App } from './App.jsx';

// No <StrictMode>: its double effects would dispose the WebSocket clients that
// App and LivePanel create once per token.
createRoot(document.getElementById('root')).render(<App />);
