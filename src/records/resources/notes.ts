import { Type } from 'typebox';
import { nullable, oneOf, optional, partial, PRIORITIES, Text, Title, Uuid } from '../fields.js';
import { checkUsers, filter, type RecordSpec } from '../resource.js';

const Priority = oneOf(PRIORITIES);

const create = {
  title: Title,
  content: Text,
  priority: optional(Priority),
  is_pinned: optional(Type.Boolean()),
  assigned_to: optional(nullable(Uuid)),
};

/** Notes: a title and content, a priority, pinned or not, optionally assigned to a user. */
export const notes: RecordSpec = {
  table: 'notes',
  path: 'notes',
  label: 'note',
  schemaId: 'Note',
  target: 'notable',
  columns: ['title', 'content', 'priority', 'is_pinned', 'assigned_to'],
  fields: { title: Type.String(), content: Type.String(), priority: Priority, is_pinned: Type.Boolean(), assigned_to: nullable(Uuid) },
  create,
  update: partial(create),
  sorts: ['created_at', 'updated_at', 'title', 'is_pinned'],
  defaultSort: { column: 'created_at', direction: 'desc' },
  search: ['title', 'content'],
  filters: {
    priority: filter.equals('priority', Priority),
    is_pinned: filter.equals('is_pinned', Type.Boolean()),
    assigned_to: filter.equals('assigned_to', Uuid),
  },
  async write(values, _input, { trx }) {
    if (typeof values.assigned_to === 'string') await checkUsers(trx, 'assigned_to', [values.assigned_to]);
    return values;
  },
};
