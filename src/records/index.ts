import type { Kysely } from 'kysely';
import type { PlatformDatabase } from '../db/platform-types.js';
import type { PolicyReader } from '../settings/policy.js';
import { RecordService, type RecordSpec } from './resource.js';
import { attachments } from './resources/attachments.js';
import { carbonFootprints } from './resources/carbon-footprints.js';
import { channelConfigs } from './resources/channel-configs.js';
import { events } from './resources/events.js';
import { logacalls } from './resources/logacalls.js';
import { notes } from './resources/notes.js';
import { reviews } from './resources/reviews.js';
import { tasks } from './resources/tasks.js';
import type { SecretBox } from './secrets.js';
import type { FileStorage } from './storage.js';

export interface RecordDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly storage: FileStorage;
  readonly secrets: SecretBox;
  readonly policies: PolicyReader;
}

/** The eight extended resources, each a spec over the shared record module. */
export function recordSpecs(deps: Omit<RecordDeps, 'db'>): RecordSpec[] {
  return [notes, logacalls, tasks, attachments(deps), events, carbonFootprints, channelConfigs(deps.secrets), reviews];
}

export function recordServices(deps: RecordDeps): RecordService[] {
  return recordSpecs(deps).map((spec) => new RecordService(deps.db, spec));
}
