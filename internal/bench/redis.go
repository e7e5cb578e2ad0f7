package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RedisResult is herd against Redis on this machine, like for like: five
// processes that each apply every write and append it to a log synced
// every second. Redis runs as a primary with four replicas streaming from
// it, and as a primary alone; both are sent inline GEOADDs by the load
// generator that sends herd's IAMATs, with the same connections and
// requests in flight, and herd's IAMATs all go to one server of the
// five-server herd running as separate processes.
type RedisResult struct {
	// Skipped says why the comparison did not run; nothing else is set
	// then.
	Skipped string `json:"skipped,omitempty"`
	// Version is redis-server's.
	Version string `json:"version,omitempty"`
	// Herd is the herd server that took the load.
	Herd string `json:"herd,omitempty"`
	// Rows are, for each load: the echo server (IAMAT lines), herd,
	// Redis's primary alone and Redis's primary with four replicas
	// (targets "echo", "herd", "redis alone", "redis+4").
	Rows []LoadRow `json:"rows,omitempty"`
	// Replicas are the four replicas as checked after the last load.
	Replicas []ReplicaCheck `json:"replicas,omitempty"`
	// Members is how many members the primary's key holds after the run.
	Members int64 `json:"members,omitempty"`
}

// ReplicaCheck is one replica compared with its primary after the run,
// once it had applied everything the primary sent.
type ReplicaCheck struct {
	Addr  string `json:"addr"`
	State string `json:"state"` // as the primary's INFO replication gives it
	// Members is ZCARD of the key on the replica.
	Members int64 `json:"members"`
	// Equal says the replica's whole sorted set (every member with its
	// score, the encoded location) is byte for byte the primary's.
	Equal bool `json:"equal"`
}

// Load targets of the Redis comparison.
const (
	targetRedisAlone      = "redis alone"
	targetRedisReplicated = "redis+4"
	redisReplicas         = 4
	// redisKey is the sorted set the GEOADDs write.
	redisKey = "pts"
	// redisReadyTimeout bounds starting the servers and the replicas'
	// first synchronisation.
	redisReadyTimeout = time.Minute
)

// redisArgs configure every Redis server like herd's servers: an
// append-only log synced every second, no snapshots, and replicas that
// start streaming at once.
var redisArgs = []string{
	"--bind", "127.0.0.1", "--daemonize", "no", "--logfile", "",
	"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
	"--repl-diskless-sync-delay", "0",
}

// redisServer is one redis-server process.
type redisServer struct {
	*child
	addr string
}

// redisSet is what the comparison runs: a primary alone, and a primary
// with its replicas.
type redisSet struct {
	version  string
	alone    *redisServer
	primary  *redisServer
	replicas []*redisServer
}

// startRedis starts redis-server (the binary bin) on a free port with its
// files in dir/name, as a replica of primary when that is not nil, and
// waits until it answers PING.
func startRedis(ctx context.Context, bin, dir, name string, primary *redisServer) (*redisServer, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := ports[0]
	_, port, _ := strings.Cut(addr, ":")
	home := filepath.Join(dir, name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	argv := append([]string{bin, "--port", port, "--dir", home}, redisArgs...)
	if primary != nil {
		host, pport, _ := strings.Cut(primary.addr, ":")
		argv = append(argv, "--replicaof", host, pport)
	}
	c, err := startChild("redis "+name, argv, childEnv(), filepath.Join(dir, name+".out"))
	if err != nil {
		return nil, err
	}
	s := &redisServer{child: c, addr: addr}
	err = poll(ctx, redisReadyTimeout, 20*time.Millisecond, func() error {
		if err := c.alive(); err != nil {
			return err
		}
		_, err := s.text("PING")
		return err
	})
	if err != nil {
		c.stop()
		return nil, errors.Join(err, c.alive())
	}
	return s, nil
}

// text runs one command on a fresh connection and returns its reply.
func (s *redisServer) text(args ...string) (string, error) {
	rc, err := dialRESP(s.addr)
	if err != nil {
		return "", err
	}
	defer rc.close()
	return rc.text(args...)
}

// info returns an INFO section of the server.
func (s *redisServer) info(section string) (map[string]string, error) {
	rc, err := dialRESP(s.addr)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	return rc.info(section)
}

// startRedisSet starts the primary alone, then the primary with its
// replicas, and waits until the primary reports every replica online.
func startRedisSet(ctx context.Context, bin, dir string) (*redisSet, error) {
	rs := &redisSet{}
	var err error
	if rs.alone, err = startRedis(ctx, bin, dir, "alone", nil); err != nil {
		return nil, err
	}
	if rs.primary, err = startRedis(ctx, bin, dir, "primary", nil); err != nil {
		rs.close()
		return nil, err
	}
	for i := range redisReplicas {
		rep, err := startRedis(ctx, bin, dir, fmt.Sprintf("replica%d", i+1), rs.primary)
		if err != nil {
			rs.close()
			return nil, err
		}
		rs.replicas = append(rs.replicas, rep)
	}
	err = poll(ctx, redisReadyTimeout, 20*time.Millisecond, func() error {
		states, err := rs.replicaStates()
		if err != nil {
			return err
		}
		for addr, st := range states {
			if st.state != "online" {
				return fmt.Errorf("replica %s is %q, not online", addr, st.state)
			}
		}
		return nil
	})
	if err == nil {
		var info map[string]string
		if info, err = rs.primary.info("server"); err == nil {
			rs.version = info["redis_version"]
		}
	}
	if err != nil {
		rs.close()
		return nil, err
	}
	return rs, nil
}

// replicaState is a replica as its primary reports it.
type replicaState struct {
	state  string
	offset int64 // the replication offset it last acknowledged
}

// replicaStates reads the primary's INFO replication: the state of each
// of the set's replicas, by address. A replica the primary does not list
// yet is an error.
func (rs *redisSet) replicaStates() (map[string]replicaState, error) {
	info, err := rs.primary.info("replication")
	if err != nil {
		return nil, err
	}
	listed := map[string]replicaState{}
	for k, v := range info {
		if !strings.HasPrefix(k, "slave") || strings.Contains(k, "_") {
			continue
		}
		// slave0:ip=127.0.0.1,port=41234,state=online,offset=123,lag=0
		f := map[string]string{}
		for kv := range strings.SplitSeq(v, ",") {
			if a, b, ok := strings.Cut(kv, "="); ok {
				f[a] = b
			}
		}
		off, _ := strconv.ParseInt(f["offset"], 10, 64)
		listed[f["ip"]+":"+f["port"]] = replicaState{state: f["state"], offset: off}
	}
	out := map[string]replicaState{}
	for _, rep := range rs.replicas {
		st, ok := listed[rep.addr]
		if !ok {
			return nil, fmt.Errorf("the primary does not list replica %s yet", rep.addr)
		}
		out[rep.addr] = st
	}
	return out, nil
}

// settle waits until every replica has applied all that the primary has
// sent: its own offset is at least the primary's.
func (rs *redisSet) settle(ctx context.Context) error {
	return poll(ctx, settleTimeout, 10*time.Millisecond, func() error {
		info, err := rs.primary.info("replication")
		if err != nil {
			return err
		}
		want, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
		if err != nil {
			return fmt.Errorf("primary's master_repl_offset %q", info["master_repl_offset"])
		}
		for _, rep := range rs.replicas {
			ri, err := rep.info("replication")
			if err != nil {
				return err
			}
			if got, _ := strconv.ParseInt(ri["slave_repl_offset"], 10, 64); got < want {
				return fmt.Errorf("replica %s is at offset %d of %d", rep.addr, got, want)
			}
		}
		return nil
	})
}

// verify waits for the replicas to catch up, then compares each one's
// whole sorted set with the primary's.
func (rs *redisSet) verify(ctx context.Context) (members int64, checks []ReplicaCheck, err error) {
	if err := rs.settle(ctx); err != nil {
		return 0, nil, err
	}
	states, err := rs.replicaStates()
	if err != nil {
		return 0, nil, err
	}
	members, want, err := rs.primary.digest()
	if err != nil {
		return 0, nil, err
	}
	for _, rep := range rs.replicas {
		n, sum, err := rep.digest()
		if err != nil {
			return members, checks, err
		}
		checks = append(checks, ReplicaCheck{Addr: rep.addr, State: states[rep.addr].state, Members: n, Equal: n == members && sum == want})
	}
	return members, checks, nil
}

// digest returns the size of the sorted set and a hash of all its members
// with their scores, in order.
func (s *redisServer) digest() (int64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	card, err := s.text("ZCARD", redisKey)
	if err != nil {
		return 0, sum, err
	}
	n, err := strconv.ParseInt(card, 10, 64)
	if err != nil {
		return 0, sum, fmt.Errorf("bench: ZCARD answered %q", card)
	}
	rc, err := dialRESP(s.addr)
	if err != nil {
		return 0, sum, err
	}
	defer rc.close()
	h := sha256.New()
	if err := rc.do(h, "ZRANGE", redisKey, "0", "-1", "WITHSCORES"); err != nil {
		return 0, sum, err
	}
	copy(sum[:], h.Sum(nil))
	return n, sum, nil
}

// servers returns every process of the set.
// replicatedChildren returns the processes of the primary and its replicas.
func (rs *redisSet) replicatedChildren() []*child {
	out := []*child{rs.primary.child}
	for _, r := range rs.replicas {
		out = append(out, r.child)
	}
	return out
}

func (rs *redisSet) servers() []*redisServer {
	return append([]*redisServer{rs.alone, rs.primary}, rs.replicas...)
}

// close stops every server of the set.
func (rs *redisSet) close() error {
	var wg sync.WaitGroup
	servers := rs.servers()
	errs := make([]error, len(servers))
	for i, s := range servers {
		if s != nil {
			wg.Go(func() { errs[i] = s.stop() })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// geoaddRequests returns inline GEOADDs of the clients prefix+NNNNNN to
// the sorted set redisKey, with the clients and locations iamatRequests
// gives the same connection and sequence number.
func geoaddRequests(prefix string, space uint64) requestFunc {
	return func(dst []byte, conn, conns int, seq uint64, _ int64) []byte {
		id := clientNumber(conn, conns, seq, space)
		loc := location(id) // latitude then longitude, signed, 10 and 11 bytes
		dst = append(dst, "GEOADD "+redisKey+" "...)
		dst = append(dst, loc[10:]...)
		dst = append(dst, ' ')
		dst = append(dst, loc[:10]...)
		dst = append(dst, ' ')
		dst = appendClient(dst, prefix, id)
		return append(dst, '\n')
	}
}
