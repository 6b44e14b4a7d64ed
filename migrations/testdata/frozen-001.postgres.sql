--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: audit_events_append_only(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.accounts (
    id uuid NOT NULL,
    connector_id uuid NOT NULL,
    identity_id uuid,
    username text NOT NULL,
    external_id text DEFAULT ''::text NOT NULL,
    status text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT accounts_status_check CHECK ((status = ANY (ARRAY['enabled'::text, 'locked'::text, 'deleted'::text])))
);


--
-- Name: api_clients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_clients (
    id uuid NOT NULL,
    client_id text NOT NULL,
    name text NOT NULL,
    secret_hash text NOT NULL,
    scopes text NOT NULL,
    created_by text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);


--
-- Name: api_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_tokens (
    token_hash text NOT NULL,
    client_id uuid NOT NULL,
    scopes text NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: audit_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_events (
    id bigint NOT NULL,
    at timestamp with time zone NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target_type text DEFAULT ''::text NOT NULL,
    target_id text DEFAULT ''::text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL
);


--
-- Name: audit_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_events_id_seq OWNED BY public.audit_events.id;


--
-- Name: connector_jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.connector_jobs (
    id uuid NOT NULL,
    instance_id uuid NOT NULL,
    seq integer NOT NULL,
    connector_id uuid NOT NULL,
    connector_name text NOT NULL,
    connector_type text NOT NULL,
    identity_id uuid,
    username text NOT NULL,
    entitlement_id uuid,
    entitlement_name text DEFAULT ''::text NOT NULL,
    operation text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    priority text NOT NULL,
    depends_on uuid,
    revocation boolean DEFAULT false NOT NULL,
    run_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    queue_job_id bigint,
    message text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT connector_jobs_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'scheduled'::text, 'running'::text, 'completed'::text, 'failed'::text, 'canceled'::text])))
);


--
-- Name: connectors; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.connectors (
    id uuid NOT NULL,
    name text NOT NULL,
    type text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    secrets bytea,
    enabled boolean DEFAULT true NOT NULL,
    health text DEFAULT 'unknown'::text NOT NULL,
    health_message text DEFAULT ''::text NOT NULL,
    health_at timestamp with time zone,
    import_cookie text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: directory_accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.directory_accounts (
    connector_id uuid NOT NULL,
    username text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    email text DEFAULT ''::text NOT NULL,
    locked boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: directory_groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.directory_groups (
    connector_id uuid NOT NULL,
    name text NOT NULL,
    kind text DEFAULT 'group'::text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: directory_members; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.directory_members (
    connector_id uuid NOT NULL,
    group_name text NOT NULL,
    username text NOT NULL,
    added_at timestamp with time zone NOT NULL
);


--
-- Name: entitlements; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.entitlements (
    id uuid NOT NULL,
    connector_id uuid NOT NULL,
    external_id text NOT NULL,
    name text NOT NULL,
    kind text DEFAULT 'group'::text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT entitlements_kind_check CHECK ((kind = ANY (ARRAY['group'::text, 'role'::text])))
);


--
-- Name: identities; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.identities (
    id uuid NOT NULL,
    username text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    email text DEFAULT ''::text NOT NULL,
    source text DEFAULT 'local'::text NOT NULL,
    external_id text DEFAULT ''::text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT identities_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text, 'deleted'::text])))
);


--
-- Name: job_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_events (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    at timestamp with time zone NOT NULL,
    status text NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    message text DEFAULT ''::text NOT NULL
);


--
-- Name: job_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.job_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: job_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.job_events_id_seq OWNED BY public.job_events.id;


--
-- Name: memberships; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.memberships (
    account_id uuid NOT NULL,
    entitlement_id uuid NOT NULL,
    granted_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone
);


--
-- Name: request_instances; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.request_instances (
    id uuid NOT NULL,
    task_id uuid,
    task_name text DEFAULT ''::text NOT NULL,
    request jsonb NOT NULL,
    type text NOT NULL,
    beneficiary_type text NOT NULL,
    beneficiary_id uuid NOT NULL,
    beneficiary_name text NOT NULL,
    connector_id uuid NOT NULL,
    trigger text NOT NULL,
    triggered_by text DEFAULT ''::text NOT NULL,
    priority text NOT NULL,
    status text NOT NULL,
    jobs_total integer DEFAULT 0 NOT NULL,
    jobs_done integer DEFAULT 0 NOT NULL,
    expires_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    CONSTRAINT request_instances_trigger_check CHECK ((trigger = ANY (ARRAY['submission'::text, 'manual'::text, 'schedule'::text, 'api'::text, 'cli'::text])))
);


--
-- Name: schedule_ticks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schedule_ticks (
    task_id uuid NOT NULL,
    tick_at timestamp with time zone NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at text NOT NULL
);


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    id uuid NOT NULL,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    request jsonb NOT NULL,
    type text NOT NULL,
    beneficiary_type text NOT NULL,
    beneficiary_id uuid NOT NULL,
    beneficiary_name text NOT NULL,
    connector_id uuid NOT NULL,
    status text NOT NULL,
    cron text DEFAULT ''::text NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    schedule_enabled boolean DEFAULT false NOT NULL,
    notify jsonb DEFAULT '{}'::jsonb NOT NULL,
    last_result text DEFAULT ''::text NOT NULL,
    last_run_at timestamp with time zone,
    last_instance_id uuid,
    created_by text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT tasks_status_check CHECK ((status = ANY (ARRAY['idle'::text, 'triggered'::text, 'disabled'::text])))
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id uuid NOT NULL,
    username text NOT NULL,
    email text DEFAULT ''::text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL,
    identity_id uuid,
    disabled boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['requester'::text, 'admin'::text])))
);


--
-- Name: workgroup_members; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.workgroup_members (
    workgroup_id uuid NOT NULL,
    identity_id uuid NOT NULL,
    added_at timestamp with time zone NOT NULL
);


--
-- Name: workgroups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.workgroups (
    id uuid NOT NULL,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: audit_events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events ALTER COLUMN id SET DEFAULT nextval('public.audit_events_id_seq'::regclass);


--
-- Name: job_events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_events ALTER COLUMN id SET DEFAULT nextval('public.job_events_id_seq'::regclass);


--
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.accounts VALUES ('60000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', 'alice', 'alice', 'enabled', '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: api_clients; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_clients VALUES ('11000000-0000-4000-8000-000000000001', 'pc_frozen00001', 'Nightly script', 'x', 'read trigger', 'demo', '2026-01-15 09:00:00+00', NULL);


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: audit_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_events VALUES (1, '2026-01-15 09:00:00+00', 'demo', 'task.create', 'task', '70000000-0000-4000-8000-000000000001', '{"name": "Onboard Alice"}');


--
-- Data for Name: connector_jobs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.connector_jobs VALUES ('90000000-0000-4000-8000-000000000001', '80000000-0000-4000-8000-000000000001', 1, '40000000-0000-4000-8000-000000000001', 'Corp Directory', 'internal', '20000000-0000-4000-8000-000000000001', 'alice', '50000000-0000-4000-8000-000000000001', 'VPN Users', 'entitlement.grant', 'Directory.AddToGroup', 'completed', 'high', NULL, false, NULL, 1, NULL, 'added to VPN Users', '2026-01-15 09:00:30+00', '2026-01-15 09:00:40+00', '2026-01-15 09:01:00+00', '2026-01-15 09:01:00+00');


--
-- Data for Name: connectors; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.connectors VALUES ('40000000-0000-4000-8000-000000000001', 'Corp Directory', 'internal', 'Accounts and groups kept in Provisor', '{}', NULL, true, 'ok', '', NULL, '', '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: directory_accounts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.directory_accounts VALUES ('40000000-0000-4000-8000-000000000001', 'alice', 'Alice Martin', 'alice@example.test', false, '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: directory_groups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.directory_groups VALUES ('40000000-0000-4000-8000-000000000001', 'VPN Users', 'group', 'Remote access', '2026-01-15 09:00:00+00');


--
-- Data for Name: directory_members; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.directory_members VALUES ('40000000-0000-4000-8000-000000000001', 'VPN Users', 'alice', '2026-01-15 09:01:00+00');


--
-- Data for Name: entitlements; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.entitlements VALUES ('50000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-000000000001', 'VPN Users', 'VPN Users', 'group', 'Remote access', false, '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: identities; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.identities VALUES ('20000000-0000-4000-8000-000000000001', 'alice', 'Alice Martin', 'alice@example.test', 'local', '', 'active', '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');
INSERT INTO public.identities VALUES ('20000000-0000-4000-8000-000000000002', 'bob', 'Bob Durand', 'bob@example.test', 'Corp Directory', 'uid=bob', 'active', '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: job_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.job_events VALUES (1, '90000000-0000-4000-8000-000000000001', '2026-01-15 09:00:30+00', 'pending', 0, 'queued');
INSERT INTO public.job_events VALUES (2, '90000000-0000-4000-8000-000000000001', '2026-01-15 09:00:40+00', 'running', 1, 'started');
INSERT INTO public.job_events VALUES (3, '90000000-0000-4000-8000-000000000001', '2026-01-15 09:01:00+00', 'completed', 1, 'added to VPN Users');


--
-- Data for Name: memberships; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.memberships VALUES ('60000000-0000-4000-8000-000000000001', '50000000-0000-4000-8000-000000000001', '2026-01-15 09:01:00+00', NULL);


--
-- Data for Name: request_instances; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.request_instances VALUES ('80000000-0000-4000-8000-000000000001', '70000000-0000-4000-8000-000000000001', 'Onboard Alice', '{"type": "add_entitlements", "priority": "high", "connector_id": "40000000-0000-4000-8000-000000000001", "entitlements": ["50000000-0000-4000-8000-000000000001"], "justification": "New hire", "beneficiary_id": "20000000-0000-4000-8000-000000000001", "beneficiary_type": "identity"}', 'add_entitlements', 'identity', '20000000-0000-4000-8000-000000000001', 'Alice Martin', '40000000-0000-4000-8000-000000000001', 'schedule', 'scheduler', 'high', 'completed', 1, 1, NULL, '2026-01-15 09:00:30+00', '2026-01-15 09:01:00+00', '2026-01-15 09:01:00+00');


--
-- Data for Name: schedule_ticks; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations VALUES (1, 'initial', '2026-01-15T08:59:00Z');


--
-- Data for Name: tasks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tasks VALUES ('70000000-0000-4000-8000-000000000001', 'Onboard Alice', 'VPN for Alice', '{"type": "add_entitlements", "priority": "high", "connector_id": "40000000-0000-4000-8000-000000000001", "entitlements": ["50000000-0000-4000-8000-000000000001"], "justification": "New hire", "beneficiary_id": "20000000-0000-4000-8000-000000000001", "beneficiary_type": "identity"}', 'add_entitlements', 'identity', '20000000-0000-4000-8000-000000000001', 'Alice Martin', '40000000-0000-4000-8000-000000000001', 'idle', '0 22 * * *', 'Europe/Paris', true, '{"when": "always", "enabled": true, "recipients": ["requester"]}', 'completed', '2026-01-15 09:01:00+00', '80000000-0000-4000-8000-000000000001', 'demo', '2026-01-15 09:00:00+00', '2026-01-15 09:01:00+00');


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users VALUES ('10000000-0000-4000-8000-000000000001', 'admin', 'admin@example.test', 'Ada Admin', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2Fh1Q1n5s5Zn8m1c8Z6iQ1a', 'admin', NULL, false, '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');
INSERT INTO public.users VALUES ('10000000-0000-4000-8000-000000000002', 'alice', 'alice@example.test', 'Alice Martin', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2Fh1Q1n5s5Zn8m1c8Z6iQ1a', 'requester', NULL, false, '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Data for Name: workgroup_members; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.workgroup_members VALUES ('30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', '2026-01-15 09:00:00+00');
INSERT INTO public.workgroup_members VALUES ('30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002', '2026-01-15 09:00:00+00');


--
-- Data for Name: workgroups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.workgroups VALUES ('30000000-0000-4000-8000-000000000001', 'Finance', 'Finance department', '2026-01-15 09:00:00+00', '2026-01-15 09:00:00+00');


--
-- Name: audit_events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_events_id_seq', 1, true);


--
-- Name: job_events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.job_events_id_seq', 3, true);


--
-- Name: accounts accounts_connector_id_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_connector_id_username_key UNIQUE (connector_id, username);


--
-- Name: accounts accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);


--
-- Name: api_clients api_clients_client_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_clients
    ADD CONSTRAINT api_clients_client_id_key UNIQUE (client_id);


--
-- Name: api_clients api_clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_clients
    ADD CONSTRAINT api_clients_pkey PRIMARY KEY (id);


--
-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (token_hash);


--
-- Name: audit_events audit_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);


--
-- Name: connector_jobs connector_jobs_instance_id_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connector_jobs
    ADD CONSTRAINT connector_jobs_instance_id_seq_key UNIQUE (instance_id, seq);


--
-- Name: connector_jobs connector_jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connector_jobs
    ADD CONSTRAINT connector_jobs_pkey PRIMARY KEY (id);


--
-- Name: connectors connectors_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_name_key UNIQUE (name);


--
-- Name: connectors connectors_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_pkey PRIMARY KEY (id);


--
-- Name: directory_accounts directory_accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_accounts
    ADD CONSTRAINT directory_accounts_pkey PRIMARY KEY (connector_id, username);


--
-- Name: directory_groups directory_groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_groups
    ADD CONSTRAINT directory_groups_pkey PRIMARY KEY (connector_id, name);


--
-- Name: directory_members directory_members_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_members
    ADD CONSTRAINT directory_members_pkey PRIMARY KEY (connector_id, group_name, username);


--
-- Name: entitlements entitlements_connector_id_external_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.entitlements
    ADD CONSTRAINT entitlements_connector_id_external_id_key UNIQUE (connector_id, external_id);


--
-- Name: entitlements entitlements_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.entitlements
    ADD CONSTRAINT entitlements_pkey PRIMARY KEY (id);


--
-- Name: identities identities_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (id);


--
-- Name: identities identities_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.identities
    ADD CONSTRAINT identities_username_key UNIQUE (username);


--
-- Name: job_events job_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_events
    ADD CONSTRAINT job_events_pkey PRIMARY KEY (id);


--
-- Name: memberships memberships_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_pkey PRIMARY KEY (account_id, entitlement_id);


--
-- Name: request_instances request_instances_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.request_instances
    ADD CONSTRAINT request_instances_pkey PRIMARY KEY (id);


--
-- Name: schedule_ticks schedule_ticks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedule_ticks
    ADD CONSTRAINT schedule_ticks_pkey PRIMARY KEY (task_id, tick_at);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: tasks tasks_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_name_key UNIQUE (name);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key UNIQUE (username);


--
-- Name: workgroup_members workgroup_members_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workgroup_members
    ADD CONSTRAINT workgroup_members_pkey PRIMARY KEY (workgroup_id, identity_id);


--
-- Name: workgroups workgroups_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workgroups
    ADD CONSTRAINT workgroups_name_key UNIQUE (name);


--
-- Name: workgroups workgroups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workgroups
    ADD CONSTRAINT workgroups_pkey PRIMARY KEY (id);


--
-- Name: accounts_identity; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX accounts_identity ON public.accounts USING btree (identity_id);


--
-- Name: api_tokens_expires_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX api_tokens_expires_at ON public.api_tokens USING btree (expires_at);


--
-- Name: audit_events_actor; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_events_actor ON public.audit_events USING btree (actor, at DESC);


--
-- Name: audit_events_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_events_at ON public.audit_events USING btree (at DESC);


--
-- Name: connector_jobs_depends_on; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX connector_jobs_depends_on ON public.connector_jobs USING btree (depends_on) WHERE (depends_on IS NOT NULL);


--
-- Name: connector_jobs_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX connector_jobs_status ON public.connector_jobs USING btree (status, instance_id);


--
-- Name: identities_display_name; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX identities_display_name ON public.identities USING btree (lower(display_name));


--
-- Name: job_events_job; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX job_events_job ON public.job_events USING btree (job_id, id);


--
-- Name: memberships_entitlement; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX memberships_entitlement ON public.memberships USING btree (entitlement_id);


--
-- Name: request_instances_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX request_instances_status ON public.request_instances USING btree (status, updated_at DESC);


--
-- Name: request_instances_task; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX request_instances_task ON public.request_instances USING btree (task_id, created_at DESC);


--
-- Name: request_instances_updated; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX request_instances_updated ON public.request_instances USING btree (updated_at DESC, id);


--
-- Name: tasks_schedule; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_schedule ON public.tasks USING btree (schedule_enabled) WHERE schedule_enabled;


--
-- Name: workgroup_members_identity; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX workgroup_members_identity ON public.workgroup_members USING btree (identity_id);


--
-- Name: audit_events audit_events_no_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_events_no_update BEFORE DELETE OR UPDATE ON public.audit_events FOR EACH ROW EXECUTE FUNCTION public.audit_events_append_only();


--
-- Name: accounts accounts_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id) ON DELETE CASCADE;


--
-- Name: accounts accounts_identity_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_identity_id_fkey FOREIGN KEY (identity_id) REFERENCES public.identities(id) ON DELETE SET NULL;


--
-- Name: api_tokens api_tokens_client_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.api_clients(id) ON DELETE CASCADE;


--
-- Name: connector_jobs connector_jobs_instance_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connector_jobs
    ADD CONSTRAINT connector_jobs_instance_id_fkey FOREIGN KEY (instance_id) REFERENCES public.request_instances(id) ON DELETE CASCADE;


--
-- Name: directory_accounts directory_accounts_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_accounts
    ADD CONSTRAINT directory_accounts_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id) ON DELETE CASCADE;


--
-- Name: directory_groups directory_groups_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_groups
    ADD CONSTRAINT directory_groups_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id) ON DELETE CASCADE;


--
-- Name: directory_members directory_members_connector_id_group_name_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_members
    ADD CONSTRAINT directory_members_connector_id_group_name_fkey FOREIGN KEY (connector_id, group_name) REFERENCES public.directory_groups(connector_id, name) ON DELETE CASCADE;


--
-- Name: directory_members directory_members_connector_id_username_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.directory_members
    ADD CONSTRAINT directory_members_connector_id_username_fkey FOREIGN KEY (connector_id, username) REFERENCES public.directory_accounts(connector_id, username) ON DELETE CASCADE;


--
-- Name: entitlements entitlements_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.entitlements
    ADD CONSTRAINT entitlements_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id) ON DELETE CASCADE;


--
-- Name: job_events job_events_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_events
    ADD CONSTRAINT job_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.connector_jobs(id) ON DELETE CASCADE;


--
-- Name: memberships memberships_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id) ON DELETE CASCADE;


--
-- Name: memberships memberships_entitlement_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_entitlement_id_fkey FOREIGN KEY (entitlement_id) REFERENCES public.entitlements(id) ON DELETE CASCADE;


--
-- Name: request_instances request_instances_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.request_instances
    ADD CONSTRAINT request_instances_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE SET NULL;


--
-- Name: schedule_ticks schedule_ticks_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedule_ticks
    ADD CONSTRAINT schedule_ticks_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: tasks tasks_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id);


--
-- Name: workgroup_members workgroup_members_identity_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workgroup_members
    ADD CONSTRAINT workgroup_members_identity_id_fkey FOREIGN KEY (identity_id) REFERENCES public.identities(id) ON DELETE CASCADE;


--
-- Name: workgroup_members workgroup_members_workgroup_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workgroup_members
    ADD CONSTRAINT workgroup_members_workgroup_id_fkey FOREIGN KEY (workgroup_id) REFERENCES public.workgroups(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


