package audit

import "strings"

// Actors that are not people. Every actor Provisor records (a task's
// creator, who started a run, an audit event's actor) is either a portal
// user's username or one of these "kind:name" forms: API clients are
// "api:NAME", directories that sign people in "directory:NAME". A username
// never holds a colon (access refuses one, locally and from a directory),
// so no person can take the name of the system, the scheduler or a client
// and so own what they made.
const (
	// ActorSystem makes the Data Import tasks of connectors.
	ActorSystem = "system:provisor"
	// ActorScheduler starts the runs of schedule ticks.
	ActorScheduler = "system:scheduler"
	// ActorDemo loads the demo data.
	ActorDemo = "system:demo"
	// ActorCLI is the provisor command line (user and api-client create).
	ActorCLI = "system:cli"
)

// IsInternal reports whether actor is no portal user: the system, the
// scheduler, an API client or a directory.
func IsInternal(actor string) bool { return strings.Contains(actor, ":") }
