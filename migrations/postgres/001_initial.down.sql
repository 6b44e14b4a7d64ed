DROP TABLE IF EXISTS audit_events, job_events, connector_jobs, request_instances, schedule_ticks, tasks,
    directory_members, directory_groups, directory_accounts, memberships, accounts, entitlements,
    connectors, workgroup_members, workgroups, identities, api_tokens, api_clients, users;
DROP FUNCTION IF EXISTS audit_events_append_only();
