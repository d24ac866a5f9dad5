/**
 * The GraphQL schema (SPEC §12): the REST resources with camelCase fields. docs/schema.graphql is
 * this text as the running schema prints it (test/graphql.test.ts fails when the two drift).
 */
export const typeDefs = /* GraphQL */ `
  "Any JSON value (a setting's value, an audit row's before/after)."
  scalar JSON
  "An RFC 3339 date-time."
  scalar DateTime

  type Query {
    "The signed-in user (or the owner of the API key)."
    me: User!
    user(id: ID!): User
    users(page: Int, pageSize: Int, search: String, status: String, role: String, sort: String): UserPage!
    role(id: ID!): Role
    roles: [Role!]!
    team(id: ID!): Team
    teams(page: Int, pageSize: Int, search: String): TeamPage!
    settings: [Setting!]!
    auditLogs(page: Int, pageSize: Int, action: String, entityId: ID, entityType: String, actorUserId: ID): AuditLogPage!
    notes(page: Int, pageSize: Int, targetType: String, targetId: ID, search: String): NotePage!
    tasks(page: Int, pageSize: Int, status: String, search: String): TaskPage!
    "Full-text and fuzzy search over the types the caller may read."
    search(q: String!, types: [String!], page: Int, pageSize: Int): SearchPage!
  }

  type Mutation {
    createUser(input: CreateUserInput!): User!
    updateUser(id: ID!, input: UpdateUserInput!): User!
    deleteUser(id: ID!): Boolean!
    setUserRoles(id: ID!, roles: [String!]!): User!
    "setUserRoles as a dry run: checked alike, nothing changed; who would gain or lose which permissions."
    previewUserRoles(id: ID!, roles: [String!]!): ChangePreview!
    createRole(input: CreateRoleInput!): Role!
    createTeam(input: CreateTeamInput!): Team!
    createNote(input: CreateNoteInput!): Note!
    updateSetting(key: String!, value: JSON!): Setting!
  }

  type Subscription {
    "The tenant's events as they happen (user.created, ...), each only if the caller may read its resource."
    events(types: [String!]): Event!
  }

  type User {
    id: ID!
    email: String!
    username: String
    firstName: String
    lastName: String
    phone: String
    avatarUrl: String
    locale: String
    timezone: String
    status: String!
    isEmailVerified: Boolean!
    "Role names, highest priority first."
    roles: [String!]!
    "The teams the user belongs to (needs teams.read: without it, null and a FORBIDDEN error on this field)."
    teams: [Team!]
    lastLoginAt: DateTime
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type UserPage {
    items: [User!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  "What a change would do to who holds what (a dry run: nothing was changed)."
  type ChangePreview {
    dryRun: Boolean!
    "Every user whose effective permissions the change would move."
    totalAffected: Int!
    "The first 1,000 of them by email."
    affected: [AffectedUser!]!
  }

  type AffectedUser {
    userId: ID!
    email: String!
    gained: [String!]!
    lost: [String!]!
  }

  type Role {
    id: ID!
    name: String!
    description: String
    priority: Int!
    isSystem: Boolean!
    permissions: [String!]!
    deniedPermissions: [String!]!
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type Team {
    id: ID!
    name: String!
    description: String
    parentTeamId: ID
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type TeamPage {
    items: [Team!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  type Setting {
    id: ID!
    key: String!
    value: JSON
    type: String!
    category: String!
    description: String
    isPublic: Boolean!
    updatedAt: DateTime!
  }

  type AuditLog {
    id: ID!
    seq: Int!
    actorUserId: ID
    actorType: String!
    action: String!
    entityType: String
    entityId: String
    before: JSON
    after: JSON
    metadata: JSON
    ipAddress: String
    requestId: String
    createdAt: DateTime!
  }

  type AuditLogPage {
    items: [AuditLog!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  type Note {
    id: ID!
    title: String!
    content: String
    targetType: String
    targetId: ID
    createdBy: ID
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type NotePage {
    items: [Note!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  type Task {
    id: ID!
    title: String!
    description: String
    status: String!
    priority: String
    dueAt: DateTime
    assigneeId: ID
    targetType: String
    targetId: ID
    createdBy: ID
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type TaskPage {
    items: [Task!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  type SearchHit {
    type: String!
    id: ID!
    title: String!
    "HTML with the matches in <mark>."
    snippet: String
    score: Float!
  }

  type SearchPage {
    items: [SearchHit!]!
    total: Int!
    page: Int!
    pageSize: Int!
  }

  "An event of the tenant (docs/EVENTS.md): data is the resource as the REST API shows it."
  type Event {
    id: ID!
    type: String!
    tenantSlug: String!
    occurredAt: DateTime!
    actorUserId: ID
    data: JSON
  }

  input CreateUserInput {
    email: String!
    "Omit to invite: the user gets a set-password link by mail."
    password: String
    username: String
    firstName: String
    lastName: String
    phone: String
    locale: String
    timezone: String
    status: String
    "Role names; default [\\"user\\"]."
    roles: [String!]
  }

  input UpdateUserInput {
    email: String
    username: String
    firstName: String
    lastName: String
    phone: String
    avatarUrl: String
    locale: String
    timezone: String
    status: String
  }

  input CreateRoleInput {
    name: String!
    description: String
    priority: Int
    permissions: [String!]
    deniedPermissions: [String!]
  }

  input CreateTeamInput {
    name: String!
    description: String
    parentTeamId: ID
  }

  input CreateNoteInput {
    title: String!
    content: String
    targetType: String
    targetId: ID
  }
`;
