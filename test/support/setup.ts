import { StatementCache } from '../../src/db/statements.js';

// Every reuse of a cached statement is checked against a fresh build in the suite (see StatementCache.verifying).
StatementCache.verifying = true;
