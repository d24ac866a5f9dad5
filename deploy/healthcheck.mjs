// The image's HEALTHCHECK: exit 0 when GET /ready answers 200 (the database, and Redis when
// configured, reachable), 1 otherwise, printing why (Docker keeps it: `docker inspect`).
// node:http rather than curl, which the slim base image lacks.
import http from 'node:http';
import process from 'node:process';

const port = process.env.SERVICE_PORT || '8004';
const bound = process.env.SERVICE_HOST;
const host = !bound || bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound;

const request = http.get({ host, port, path: '/ready', timeout: 4000 }, (response) => {
  let body = '';
  response.setEncoding('utf8');
  response.on('data', (chunk) => (body += chunk));
  response.on('end', () => {
    if (response.statusCode === 200) process.exit(0);
    process.stdout.write(`/ready answered ${response.statusCode}: ${body}\n`);
    process.exit(1);
  });
});
request.on('timeout', () => request.destroy(new Error('no answer within 4 s')));
request.on('error', (error) => {
  process.stdout.write(`/ready: ${error.message}\n`);
  process.exit(1);
});
