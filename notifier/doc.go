// Package notifier sends the completion emails of request instances through
// an outbox.
//
// When an instance reaches a final status (completed, failed, canceled), the
// transaction that ends it also writes one Notification per recipient, with
// its rendered subject and a Message-ID, the rendered bodies once for all
// of them, and the queue jobs that deliver them (kind "notification", on
// the queue "notifications": one job per run's recipients, or for a large
// run one per SMTP connection). A message exists if and only if the run's
// end committed: an SMTP outage delays mail, never loses it.
//
// Delivery is at least once, and in practice once. A queued message
// belongs to one job: the job written with it, or the job that queued it
// again (a resend, or held messages released), named in claimed_by. Only
// that job sends it, so a resend cannot race a delivery under way, and
// the job writes nothing before sending. It records each message as sent
// once the server accepted it, within a few milliseconds, in a statement
// shared with the other jobs' records. Only a crash between the server's
// "250" and that record makes the job, run again by River, send the
// message once more, with the same Message-ID: the duplicate SMTP itself
// allows for when a connection drops before the reply.
//
// Transient failures (refused connections, timeouts, TLS or authentication
// problems, 4xx replies) are retried with capped exponential backoff (30 s
// doubling to 1 h) until the retry period (PROVISOR_SMTP_RETRY_FOR, 24 hours
// by default) after the message was queued; then, or at once on a 5xx
// reply, the message fails with the server's reply. The job snoozes between
// tries, which River does not count as attempts. An admin can resend a
// failed message.
//
// Messages go over a few SMTP connections per process that stay open
// between deliveries (go-mail), and are dialed again when the server closed
// them; a connection that has just delivered a message sends the next one
// without checking itself with a NOOP first. A job reads its first messages
// while the connections send those of the jobs before it, and the rest
// while it sends those; the messages of one run share one stored body,
// read once per job.
//
// Without an SMTP server (the embedded default) messages are held in the
// outbox and can be read; a process that starts with a server configured
// queues every held message.
package notifier
