import { sql, type SqlBool } from 'kysely';
import { Type } from 'typebox';
import { DomainError, text } from '../../errors.js';
import { nullable, oneOf, optional, partial, PRIORITIES, Text, Timestamp, Title, Uuid } from '../fields.js';
import { checkUsers, filter, type RecordSpec } from '../resource.js';

export const TASK_STATUSES = ['todo', 'in_progress', 'done', 'cancelled'] as const;
type TaskStatus = (typeof TASK_STATUSES)[number];

/**
 * The status flow: todo -> in_progress -> done or cancelled. A task can be cancelled before it
 * starts, put back to todo while in progress, and reopened (done -> in_progress,
 * cancelled -> todo). Anything else is a 409.
 */
export const TASK_TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  todo: ['in_progress', 'cancelled'],
  in_progress: ['done', 'cancelled', 'todo'],
  done: ['in_progress'],
  cancelled: ['todo'],
};

const Status = oneOf(TASK_STATUSES);
const Priority = oneOf(PRIORITIES);
const OPEN = sql.join(['todo', 'in_progress'].map((s) => sql.lit(s)));

const create = {
  title: Title,
  description: optional(nullable(Text)),
  status: optional(oneOf(['todo', 'in_progress'], 'A task starts todo (default) or in_progress')),
  priority: optional(Priority),
  due_at: optional(nullable(Timestamp)),
  assigned_to: optional(nullable(Uuid)),
};

/** Tasks: a status flow with completed_at kept in step, a due date (and overdue filter), an assignee. */
export const tasks: RecordSpec = {
  table: 'tasks',
  path: 'tasks',
  label: 'task',
  schemaId: 'Task',
  target: 'taskable',
  columns: ['title', 'description', 'status', 'priority', 'due_at', 'completed_at', 'assigned_to'],
  fields: {
    title: Type.String(),
    description: nullable(Type.String()),
    status: Status,
    priority: Priority,
    due_at: nullable(Timestamp),
    completed_at: nullable(Timestamp),
    assigned_to: nullable(Uuid),
  },
  create,
  update: { ...partial(create), status: optional(Status) },
  sorts: ['due_at', 'created_at', 'updated_at', 'title', 'status'],
  defaultSort: { column: 'created_at', direction: 'desc' },
  search: ['title', 'description'],
  filters: {
    status: filter.equals('status', Status),
    priority: filter.equals('priority', Priority),
    assigned_to: filter.equals('assigned_to', Uuid),
    due_from: filter.atLeast('due_at'),
    due_to: filter.atMost('due_at'),
    overdue: filter.custom<boolean>(Type.Boolean({ description: 'true: open tasks past their due_at; false: the others' }), (overdue, now) =>
      overdue ? sql<SqlBool>`(r.due_at < ${now} AND r.status IN (${OPEN}))` : sql<SqlBool>`NOT (r.due_at IS NOT NULL AND r.due_at < ${now} AND r.status IN (${OPEN}))`,
    ),
  },
  async write(values, _input, { trx, before, now }) {
    if (typeof values.assigned_to === 'string') await checkUsers(trx, 'assigned_to', [values.assigned_to]);
    const from = before?.status as TaskStatus | undefined;
    const to = values.status as TaskStatus | undefined;
    if (to === undefined || to === from) return values;
    if (from !== undefined && !TASK_TRANSITIONS[from].includes(to)) {
      throw DomainError.conflict('task.invalid_transition', text('detail.task_transition', { from, to, allowed: TASK_TRANSITIONS[from].join(', ') }));
    }
    // completed_at follows the status: set when it becomes done, cleared when it leaves done.
    return { ...values, completed_at: to === 'done' ? now : null };
  },
};
