// Package bench measures Provisor's job throughput and trigger-to-completion
// latency, and the throughput of the job queue (River) alone on the same
// database, on PostgreSQL and on SQLite. `provisor bench` runs it; the
// figures go to BENCHMARKS.md.
//
// Each dialect gets a throwaway database: a new PostgreSQL database on the
// server named by --postgres, dropped at the end, or a SQLite file in a
// temporary folder. On it, in this order:
//
//   - raw River: N no-op jobs inserted, then a River client configured as
//     Provisor's (database.NewQueue with the same workers and poll settings)
//     is started, and timed until every job is completed in the database;
//   - latency: a task of one connector job on the built-in directory is
//     triggered again and again on an otherwise idle process, each run
//     waited for before the next;
//   - Provisor throughput: a task of ten connector jobs (add_entitlements of
//     ten groups on the built-in directory for one identity) is triggered N
//     times while the workers are stopped, then a fresh process starts its
//     workers and is timed until every run is final. That is the raw River
//     measurement's shape: write the backlog, start, drain.
package bench
