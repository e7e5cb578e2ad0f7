// Package faulttest checks that a herd never loses an acknowledged update
// when things go wrong around it. It holds only tests:
//
//   - network faults between servers, injected by Toxiproxy (used as a
//     library, in-process) on every directed peer link: latency and jitter,
//     connections cut mid-stream, and a black hole that partitions one server
//     from its neighbors (proxy_test.go);
//   - crashes and restarts of real `herd serve` processes: SIGKILL of some and
//     then all servers during a burst of IAMATs, and a graceful SIGTERM
//     followed by a clean restart (process_test.go);
//   - hostile and unlucky clients: huge lines, odd bytes in client ids,
//     thousands of abrupt connects, clients that never read, too many
//     connections, idle connections (hostile_test.go);
//   - clients nobody here wrote, replayed: one that half-closes and reads
//     once, as the CS131 graders do, and one that sends its next command in
//     pieces while it waits for a reply (clients_test.go);
//   - recovery: a wiped data directory refilled by the neighbors, and a crash
//     in the first moments of a run, before anything of it reached the disk
//     (recovery_test.go);
//   - a failing disk: a damaged snapshot or segment is set aside and refilled
//     from the neighbors, and a data directory deleted under a running
//     server makes it unready (diskfault_test.go);
//   - the promise behind every acknowledgement: no AT reply leaves before
//     the journal holds its update, pipelined or not (ack_test.go);
//   - a cheap fuzz target that feeds arbitrary bytes to a server over TCP and
//     checks that it keeps answering (fuzz_test.go).
//
// A failure message that starts with "BUG:" comes from a check that found a
// product bug when it was written; the test's comment says what it guards.
//
// Every test talks to 127.0.0.1 only, waits by polling with deadlines rather
// than sleeping (the sleeps are a client's pace or quiet spell, which is
// what those tests are about), and cleans up the processes and proxies it
// starts. The slowest process tests are skipped
// with -short.
package faulttest
