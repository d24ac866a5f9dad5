// The service's entry point: tracing, when configured, starts before anything it instruments
// (pg, Fastify) is loaded; then the server (server.ts).
import { startTracing } from './observability/tracing.js';

const stopTracing = await startTracing(process.env);
const { main } = await import('./server.js');
await main(stopTracing);
