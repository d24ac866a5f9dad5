import { EXTENDED_RESOURCES } from '../access/catalogue.js';

/**
 * Tables a polymorphic `<x>able_type` column may point at (checked by the database).
 *
 * The database enforces the same list through the `<table>_<x>able_type_ck` constraints
 * of migration 0002 (its own frozen copy): changing this list needs a new migration that
 * replaces those constraints. A test keeps the two equal.
 */
export const POLYMORPHIC_TYPES = ['users', 'teams', ...EXTENDED_RESOURCES] as const;

export type PolymorphicType = (typeof POLYMORPHIC_TYPES)[number];

export function isPolymorphicType(value: string): value is PolymorphicType {
  return (POLYMORPHIC_TYPES as readonly string[]).includes(value);
}

/** The pair prefix of each table that has one (`notes` -> `notable_type` + `notable_id`). */
export const POLYMORPHIC_PREFIX: Readonly<Partial<Record<PolymorphicType, string>>> = {
  notes: 'notable',
  logacalls: 'logacallable',
  tasks: 'taskable',
  attachments: 'attachable',
  events: 'eventable',
  reviews: 'reviewable',
};
