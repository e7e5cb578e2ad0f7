package bench

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestReadRESP(t *testing.T) {
	for _, c := range []struct {
		name, in string
		n        int // bytes of in that are the reply
		err      bool
	}{
		{"simple", "+OK\r\nNEXT", 5, false},
		{"integer", ":42\r\nNEXT", 5, false},
		{"bulk", "$5\r\nab\r\nc\r\nNEXT", 11, false},
		{"nil bulk", "$-1\r\nNEXT", 5, false},
		{"nested array", "*2\r\n*2\r\n$1\r\na\r\n$-1\r\n:7\r\nNEXT", 24, false},
		{"empty array", "*0\r\nNEXT", 4, false},
		{"error", "-ERR wrong\r\n", 12, true},
		{"error inside an array", "*2\r\n:1\r\n-ERR x\r\n", 16, true},
		{"no CR", "+OK\n", 0, true},
		{"bad length", "$x\r\n", 0, true},
		{"cut short", "$5\r\nab", 0, true},
		{"unknown type", "!3\r\n", 0, true},
	} {
		br := bufio.NewReader(strings.NewReader(c.in))
		var out strings.Builder
		err := readRESP(br, &out)
		if (err != nil) != c.err {
			t.Errorf("%s: readRESP(%q) = %v, want error %v", c.name, c.in, err, c.err)
			continue
		}
		if c.n > 0 && out.String() != c.in[:c.n] {
			t.Errorf("%s: copied %q, want %q", c.name, out.String(), c.in[:c.n])
		}
	}
	if err := readRESP(bufio.NewReader(strings.NewReader("-ERR x\r\n")), &strings.Builder{}); !errors.Is(err, errRESP) {
		t.Errorf("error reply: %v, want errRESP", err)
	}
}

// needRedis returns the path of redis-server, or skips the test when it is
// not installed; under CI=true it is a failure, as CI installs it.
func needRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed, and CI must install it: %v", err)
		}
		t.Skipf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	return bin
}

func TestRedisSetStreamsToItsReplicas(t *testing.T) {
	bin := needRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := startRedisSet(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	if rs.version == "" || len(rs.replicas) != redisReplicas {
		t.Fatalf("set = %+v", rs)
	}
	// Every replica runs with the append-only log synced every second.
	for _, s := range rs.servers() {
		rc, err := dialRESP(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		var fsync strings.Builder
		err = rc.do(&fsync, "CONFIG", "GET", "appendfsync")
		rc.close()
		if err != nil || !strings.Contains(fsync.String(), "everysec") {
			t.Errorf("%s: appendfsync %q, %v", s.addr, fsync.String(), err)
		}
		info, err := s.info("persistence")
		if err != nil || info["aof_enabled"] != "1" {
			t.Errorf("%s: aof_enabled = %q, %v", s.addr, info["aof_enabled"], err)
		}
	}
	res, err := runLoad(ctx, loadSpec{addrs: []string{rs.primary.addr}, conns: 4, depth: 8, total: 2000,
		request: geoaddRequests("bench-", 500), okPrefix: ":"})
	if err != nil || res.OK != 2000 || res.Errors != 0 {
		t.Fatalf("GEOADD load: %+v, %v", res, err)
	}
	members, checks, err := rs.verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if members != 500 || len(checks) != redisReplicas {
		t.Fatalf("verify = %d members, %+v", members, checks)
	}
	for _, c := range checks {
		if !c.Equal || c.Members != 500 || c.State != "online" {
			t.Errorf("replica %+v", c)
		}
	}
	// The digest tells sets apart that ZCARD does not: the lone primary
	// gets the same members, one of them elsewhere.
	if _, err := runLoad(ctx, loadSpec{addrs: []string{rs.alone.addr}, conns: 1, depth: 8, total: 500,
		request: geoaddRequests("bench-", 500), okPrefix: ":"}); err != nil {
		t.Fatal(err)
	}
	n, same, _ := rs.alone.digest()
	_, want, _ := rs.primary.digest()
	if n != 500 || same != want {
		t.Fatalf("the same members at the same places: %d members, digests equal %v", n, same == want)
	}
	if _, err := rs.alone.text("GEOADD", redisKey, "0", "0", "bench-000007"); err != nil {
		t.Fatal(err)
	}
	if n, moved, _ := rs.alone.digest(); n != 500 || moved == want {
		t.Errorf("one member moved: %d members, digest unchanged", n)
	}
}
