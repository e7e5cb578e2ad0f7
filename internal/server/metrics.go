package server

import (
	"sync/atomic"
	"time"
)

// Kind is the kind of a client command, as metrics count it.
type Kind uint8

// The kinds of client command.
const (
	KindIAMAT   Kind = iota
	KindWHATSAT      // a WHATSAT, answered or not
	KindAT           // an AT line from a client connection (the seed's flooding format)
	KindInvalid      // anything else
	KindProbe        // herd-probe, sent by herd up and herd status to tell a herd server
	numKinds
)

var kindNames = [numKinds]string{"iamat", "whatsat", "at", "invalid", "probe"}

func (k Kind) String() string { return kindNames[k] }

// Outcome is what became of a client command.
type Outcome uint8

// The outcomes of client commands.
const (
	OutcomeOK            Outcome = iota
	OutcomeStale                 // an update not newer than the one stored
	OutcomeUnknownClient         // a WHATSAT for a client no server has told of
	OutcomePlacesError           // a WHATSAT whose places lookup failed
	OutcomeRejected              // refused: not a command, or an AT line from a stranger
	OutcomeIDTooLong             // an IAMAT whose client id is over limits.max_client_id_bytes
	OutcomeClockAhead            // an IAMAT further ahead of the server's clock than limits.max_clock_ahead
	OutcomeClientCap             // an IAMAT for a new client past limits.max_clients
	OutcomeNotDurable            // an IAMAT refused because the journal has failed
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "stale", "unknown_client", "places_error", "rejected",
	"id_too_long", "clock_ahead", "client_cap", "not_durable"}

func (o Outcome) String() string { return outcomeNames[o] }

// Outcomes lists, for each kind, the outcomes a server reports for it.
func Outcomes() map[Kind][]Outcome {
	return map[Kind][]Outcome{
		KindIAMAT:   {OutcomeOK, OutcomeStale, OutcomeIDTooLong, OutcomeClockAhead, OutcomeClientCap, OutcomeNotDurable},
		KindWHATSAT: {OutcomeOK, OutcomeUnknownClient, OutcomePlacesError},
		KindAT:      {OutcomeOK, OutcomeStale, OutcomeRejected},
		KindInvalid: {OutcomeRejected},
		KindProbe:   {OutcomeOK},
	}
}

// Metrics receives measurements from the server's hot path. It must be
// cheap and safe for concurrent use.
type Metrics interface {
	// Command records one client command, what became of it, and how long
	// it took from being read to its reply being ready.
	Command(kind Kind, outcome Outcome, d time.Duration)
	// Propagation returns what records, for the updates received from
	// neighbor peer, how long each took from its IAMAT at the server that
	// took it until this server stored it. It is only as true as the
	// servers' clocks agree. A link asks for it once.
	Propagation(peer string) func(d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Command(Kind, Outcome, time.Duration)     {}
func (noMetrics) Propagation(string) func(d time.Duration) { return func(time.Duration) {} }

// Counters are a server's running totals since it started.
type Counters struct {
	IAMAT           uint64 `json:"iamat"`    // IAMAT commands taken
	WHATSAT         uint64 `json:"whatsat"`  // WHATSAT commands answered with places
	Invalid         uint64 `json:"invalid"`  // commands answered with "? "
	Injected        uint64 `json:"injected"` // AT lines taken from client connections
	ConnsOpen       int64  `json:"conns_open"`
	ConnsRefused    uint64 `json:"conns_refused"`
	FloodIn         uint64 `json:"flood_in"`  // records received over peer links
	FloodOut        uint64 `json:"flood_out"` // records sent over peer links
	FloodDup        uint64 `json:"flood_dup"` // received records that were not newer
	CatchUpSent     uint64 `json:"catchup_sent"`
	CatchUpReceived uint64 `json:"catchup_received"`
	PlacesErrors    uint64 `json:"places_errors"`
}

// counters are the live form of Counters.
type counters struct {
	IAMAT, WHATSAT, Invalid, Injected atomic.Uint64
	ConnsOpen                         atomic.Int64
	ConnsRefused                      atomic.Uint64
	FloodIn, FloodOut, FloodDup       atomic.Uint64
	CatchUpSent, CatchUpReceived      atomic.Uint64
	PlacesErrors                      atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		IAMAT: c.IAMAT.Load(), WHATSAT: c.WHATSAT.Load(), Invalid: c.Invalid.Load(), Injected: c.Injected.Load(),
		ConnsOpen: c.ConnsOpen.Load(), ConnsRefused: c.ConnsRefused.Load(),
		FloodIn: c.FloodIn.Load(), FloodOut: c.FloodOut.Load(), FloodDup: c.FloodDup.Load(),
		CatchUpSent: c.CatchUpSent.Load(), CatchUpReceived: c.CatchUpReceived.Load(),
		PlacesErrors: c.PlacesErrors.Load(),
	}
}
