package peer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// handshake runs a whole handshake between a dialer and an acceptor with
// the given secrets, moving the lines between them as a server would.
func handshake(t *testing.T, dialerSecret, acceptorSecret string) (dialer, acceptor *Session, err error) {
	t.Helper()
	d := NewDialer([]byte(dialerSecret), "Alford", "Hamilton", 42, 99)
	a := NewAcceptor("Hamilton", []byte(acceptorSecret), func(string) bool { return true })
	hello, auth, _ := bytes.Cut(d.Start(), []byte("\n"))
	accepting, err := a.Hello(hello)
	if err != nil {
		return nil, nil, err
	}
	welcome := accepting.Welcome(17)
	out, dialer, cursor, err := d.Welcome(bytes.TrimSuffix(welcome, []byte("\n")))
	if err != nil {
		return nil, nil, err
	}
	if cursor != 17 {
		t.Fatalf("dialer resumes after %d; want 17", cursor)
	}
	if len(auth) == 0 {
		auth = out
	}
	acceptor, err = accepting.Auth(bytes.TrimSuffix(auth, []byte("\n")))
	return dialer, acceptor, err
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name             string
		dialer, acceptor string
		wantErr          error
		wantSays         string // what the acceptor's error tells an operator
	}{
		{"no secret", "", "", nil, ""},
		{"same secret", "s3cret", "s3cret", nil, ""},
		{"different secrets", "s3cret", "other", ErrAuth, "the peer secrets differ"},
		{"dialer without secret", "", "s3cret", ErrAuth, "Alford has no peer secret, and this server has one"},
		{"acceptor without secret", "s3cret", "", ErrAuth, "Alford has a peer secret, and this server has none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := handshake(t, tt.dialer, tt.acceptor)
			if !errors.Is(err, tt.wantErr) || err != nil && !strings.Contains(err.Error(), tt.wantSays) {
				t.Errorf("handshake err = %v; want %v saying %q", err, tt.wantErr, tt.wantSays)
			}
		})
	}
}

// Each step of the handshake refuses what a stranger, a replayer or a
// tamperer could send it.
func TestHandshake_Refusals(t *testing.T) {
	const secret = "s3cret"
	neighbors := func(name string) bool { return name == "Alford" }
	flip := func(line []byte) []byte { // changes the last hex digit of the proof
		out := bytes.Clone(line)
		i := len(out) - 1
		if out[i] == '0' {
			out[i] = '1'
		} else {
			out[i] = '0'
		}
		return out
	}
	firstLine := func(b []byte) []byte { l, _, _ := bytes.Cut(b, []byte("\n")); return l }

	t.Run("hello to another server", func(t *testing.T) {
		a := NewAcceptor("Hamilton", []byte(secret), neighbors)
		d := NewDialer([]byte(secret), "Alford", "Welsh", 1, 0)
		if _, err := a.Hello(firstLine(d.Start())); !errors.Is(err, ErrRefused) {
			t.Errorf("Hello = %v; want ErrRefused", err)
		}
	})
	t.Run("hello from a stranger", func(t *testing.T) {
		a := NewAcceptor("Hamilton", []byte(secret), neighbors)
		d := NewDialer([]byte(secret), "Mallory", "Hamilton", 1, 0)
		if _, err := a.Hello(firstLine(d.Start())); !errors.Is(err, ErrRefused) {
			t.Errorf("Hello = %v; want ErrRefused", err)
		}
	})
	t.Run("replayed hello", func(t *testing.T) {
		a := NewAcceptor("Hamilton", []byte(secret), neighbors)
		hello := firstLine(NewDialer([]byte(secret), "Alford", "Hamilton", 1, 0).Start())
		if _, err := a.Hello(hello); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Hello(hello); !errors.Is(err, ErrAuth) {
			t.Errorf("second Hello of the same line = %v; want ErrAuth", err)
		}
	})
	t.Run("tampered hello", func(t *testing.T) {
		a := NewAcceptor("Hamilton", []byte(secret), neighbors)
		hello := firstLine(NewDialer([]byte(secret), "Alford", "Hamilton", 1, 0).Start())
		tampered := bytes.Replace(hello, []byte(" 1 0 "), []byte(" 2 0 "), 1) // another epoch
		if _, err := a.Hello(tampered); !errors.Is(err, ErrAuth) {
			t.Errorf("Hello(%q) = %v; want ErrAuth", tampered, err)
		}
	})
	t.Run("malformed hello", func(t *testing.T) {
		a := NewAcceptor("Hamilton", []byte(secret), neighbors)
		if _, err := a.Hello([]byte("HERD-HELLO 1 Alford Hamilton")); !errors.Is(err, ErrMalformed) {
			t.Errorf("Hello = %v; want ErrMalformed", err)
		}
	})
	t.Run("refused hello", func(t *testing.T) {
		d := NewDialer([]byte(secret), "Alford", "Hamilton", 1, 0)
		answer := append([]byte("? "), firstLine(d.Start())...)
		_, _, _, err := d.Welcome(answer)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "peer secret") {
			t.Errorf("Welcome(%q) = %v; want ErrRefused naming the peer secret as a likely cause", answer, err)
		}
	})
	t.Run("welcome from another server", func(t *testing.T) {
		d := NewDialer(nil, "Alford", "Hamilton", 1, 0)
		a := NewAcceptor("Welsh", nil, neighbors)
		h := d.Hello()
		h.To = "Welsh"
		accepting, err := a.Hello(h.Format())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.Welcome(firstLine(accepting.Welcome(0))); !errors.Is(err, ErrRefused) {
			t.Errorf("Welcome from Welsh = %v; want ErrRefused", err)
		}
	})
	t.Run("tampered welcome", func(t *testing.T) {
		d := NewDialer([]byte(secret), "Alford", "Hamilton", 1, 0)
		accepting, err := NewAcceptor("Hamilton", []byte(secret), neighbors).Hello(firstLine(d.Start()))
		if err != nil {
			t.Fatal(err)
		}
		welcome := firstLine(accepting.Welcome(5))
		if _, _, _, err := d.Welcome(flip(welcome)); !errors.Is(err, ErrAuth) {
			t.Errorf("Welcome with a flipped proof = %v; want ErrAuth", err)
		}
		forged := bytes.Replace(welcome, []byte(" 5 "), []byte(" 0 "), 1) // resend everything
		if _, _, _, err := d.Welcome(forged); !errors.Is(err, ErrAuth) {
			t.Errorf("Welcome with a changed cursor = %v; want ErrAuth", err)
		}
	})
	t.Run("tampered auth", func(t *testing.T) {
		d := NewDialer([]byte(secret), "Alford", "Hamilton", 1, 0)
		accepting, err := NewAcceptor("Hamilton", []byte(secret), neighbors).Hello(firstLine(d.Start()))
		if err != nil {
			t.Fatal(err)
		}
		auth, _, _, err := d.Welcome(firstLine(accepting.Welcome(0)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := accepting.Auth(flip(firstLine(auth))); !errors.Is(err, ErrAuth) {
			t.Errorf("Auth with a flipped proof = %v; want ErrAuth", err)
		}
	})
}

// Without a secret a dialer may stream before WELCOME arrives; the WELCOME
// that then comes first is skipped, and only that one.
func TestDialer_Unwelcomed(t *testing.T) {
	if _, err := NewDialer([]byte("s3cret"), "Alford", "Hamilton", 1, 0).Unwelcomed(); !errors.Is(err, ErrAuth) {
		t.Errorf("Unwelcomed with a secret = %v; want ErrAuth", err)
	}
	d := NewDialer(nil, "Alford", "Hamilton", 1, 0)
	s, err := d.Unwelcomed()
	if err != nil {
		t.Fatal(err)
	}
	if kw, _, sealed, err := s.Receive([]byte("HERD-WELCOME Hamilton 0 0123456789abcdef0123456789abcdef -")); kw != "" || sealed || err != nil {
		t.Errorf("late WELCOME: Receive = %q, %v, %v; want it skipped", kw, sealed, err)
	}
	if kw, _, _, err := s.Receive([]byte("HERD-ACK 3")); kw != KeyAck || err != nil {
		t.Errorf("ACK after the late WELCOME: Receive = %q, %v", kw, err)
	}
	if kw, _, _, err := s.Receive([]byte("HERD-WELCOME Hamilton 0 0123456789abcdef0123456789abcdef -")); kw != KeyWelcome || err != nil {
		t.Errorf("a second WELCOME: Receive = %q, %v; want it passed on as a message", kw, err)
	}
}

func TestHandshake_SecretNeverOnTheWire(t *testing.T) {
	d, a, err := handshake(t, "s3cret-value", "s3cret-value")
	if err != nil {
		t.Fatal(err)
	}
	sent := d.Seal(d.AppendUpdate(nil, 1, "AT A +0.000000000 c +1+1 1"))
	wire := bytes.Join([][]byte{[]byte(d.AuthProof()), []byte(a.WelcomeProof()), sent}, nil)
	if bytes.Contains(wire, []byte("s3cret-value")) {
		t.Error("the secret appears in what is sent")
	}
	if d.AuthProof() == a.WelcomeProof() {
		t.Error("the two proofs are equal: one could be replayed as the other")
	}
}

// receiveAll feeds the lines of a write to a receiver and returns the
// messages it may apply, or the first error.
func receiveAll(r *Session, write []byte) (applied []string, err error) {
	var held []string
	for _, line := range bytes.Split(bytes.TrimSuffix(write, []byte("\n")), []byte("\n")) {
		kw, body, sealed, err := r.Receive(line)
		if err != nil {
			return applied, err
		}
		if kw != "" {
			held = append(held, kw+" "+string(body))
		}
		if sealed {
			applied, held = append(applied, held...), nil
		}
	}
	return applied, nil
}

func TestSession_SealedWritesArriveInOrder(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		d, a, err := handshake(t, secret, secret)
		if err != nil {
			t.Fatal(err)
		}
		for round := range uint64(3) {
			var w []byte
			for i := range uint64(3) {
				w = d.AppendUpdate(w, 3*round+i+1, "AT Alford +0.100000000 kiwi +1+1 5.5")
			}
			w = d.Append(w, KeyPing, nil)
			w = d.Seal(w)
			if secret == "" && bytes.Contains(w, []byte(KeySeal)) {
				t.Errorf("a write without a secret carries a seal: %q", w)
			}
			applied, err := receiveAll(a, w)
			if err != nil || len(applied) != 4 {
				t.Fatalf("secret %q round %d: applied %q, %v; want 4 messages", secret, round, applied, err)
			}
			seq, at, err := ParseUpdate([]byte(strings.TrimPrefix(applied[2], KeyAT+" ")))
			if err != nil || seq != 3*round+3 || string(at) != "AT Alford +0.100000000 kiwi +1+1 5.5" {
				t.Fatalf("ParseUpdate(%q) = %d, %q, %v", applied[2], seq, at, err)
			}
		}
		ack := a.Seal(a.AppendAck(nil, 3))
		if applied, err := receiveAll(d, ack); err != nil || len(applied) != 1 || applied[0] != KeyAck+" 3" {
			t.Errorf("ack: %q %v", applied, err)
		}
	}
}

func TestSession_RejectsTamperingReplayReorderingAndReflection(t *testing.T) {
	write := func(s *Session, seq uint64) []byte {
		return s.Seal(s.AppendUpdate(nil, seq, "AT Alford +0.100000000 kiwi +1+1 5.5"))
	}
	tests := []struct {
		name string
		run  func(t *testing.T) error // the receiver's error on the bad write
	}{
		{"tampered", func(t *testing.T) error {
			d, a, _ := handshake(t, "s3cret", "s3cret")
			_, err := receiveAll(a, bytes.Replace(write(d, 1), []byte("+1+1"), []byte("+2+2"), 1))
			return err
		}},
		{"forged message in a sealed write", func(t *testing.T) error {
			d, a, _ := handshake(t, "s3cret", "s3cret")
			forged := append([]byte(KeyAT+" 9 AT Evil +0.100000000 kiwi +9+9 9.5\n"), write(d, 1)...)
			_, err := receiveAll(a, forged)
			return err
		}},
		{"made-up seal", func(t *testing.T) error {
			_, a, _ := handshake(t, "s3cret", "s3cret")
			_, err := receiveAll(a, []byte(KeyPing+"\n"+KeySeal+" "+strings.Repeat("0", macLen)+"\n"))
			return err
		}},
		{"replayed", func(t *testing.T) error {
			d, a, _ := handshake(t, "s3cret", "s3cret")
			w := write(d, 1)
			if _, err := receiveAll(a, w); err != nil {
				t.Fatal(err)
			}
			_, err := receiveAll(a, w)
			return err
		}},
		{"reordered", func(t *testing.T) error {
			d, a, _ := handshake(t, "s3cret", "s3cret")
			write(d, 1)
			_, err := receiveAll(a, write(d, 2))
			return err
		}},
		{"from another session", func(t *testing.T) error {
			d, _, _ := handshake(t, "s3cret", "s3cret")
			_, other, _ := handshake(t, "s3cret", "s3cret")
			_, err := receiveAll(other, write(d, 1))
			return err
		}},
		{"reflected", func(t *testing.T) error {
			_, a, _ := handshake(t, "s3cret", "s3cret")
			_, err := receiveAll(a, write(a, 1))
			return err
		}},
		{"seal sent to an open link", func(t *testing.T) error {
			_, a, _ := handshake(t, "", "")
			_, err := receiveAll(a, []byte(KeySeal+" -\n"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(t); !errors.Is(err, ErrAuth) {
				t.Errorf("err = %v; want ErrAuth", err)
			}
		})
	}
}

func TestParse_RejectsMalformed(t *testing.T) {
	for _, l := range []string{"", "HERD-HELLO", "HERD-HELLO 2 A B 1 5 0123456789abcdef0123456789abcdef -", "HERD-HELLO 1 A B x 5 0123456789abcdef0123456789abcdef -", "HERD-HELLO 1 A B 1 x 0123456789abcdef0123456789abcdef -", "HERD-HELLO 1 A B 1 5 short -", "HERD-HELLO 1 A B 1 5 0123456789abcdef0123456789abcdef"} {
		if _, err := ParseHello([]byte(l)); err == nil {
			t.Errorf("ParseHello(%q) succeeded", l)
		}
	}
	for _, l := range []string{"", "HERD-WELCOME A x 0123456789abcdef0123456789abcdef -", "HERD-WELCOME A 1 nonce -"} {
		if _, err := ParseWelcome([]byte(l)); err == nil {
			t.Errorf("ParseWelcome(%q) succeeded", l)
		}
	}
	for _, b := range []string{"", "x AT", "12"} {
		if _, _, err := ParseUpdate([]byte(b)); err == nil {
			t.Errorf("ParseUpdate(%q) succeeded", b)
		}
	}
}

func TestNonceCache_RefusesReplaysAndForgetsTheOldest(t *testing.T) {
	c := NewNonceCache(2)
	for _, step := range []struct {
		nonce string
		fresh bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"b", false}, {"a", true}} {
		if got := c.Fresh(step.nonce); got != step.fresh {
			t.Errorf("Fresh(%q) = %v; want %v", step.nonce, got, step.fresh)
		}
	}
}

// FuzzReceive feeds arbitrary lines to both kinds of receiver: nothing may
// panic, and with a secret nothing may ever count as sealed.
func FuzzReceive(f *testing.F) {
	f.Add([]byte("HERD-AT 1 AT Alford +0.100000000 kiwi +1+1 5.5\nHERD-SEAL 00112233445566778899aabbccddeeff"))
	f.Add([]byte("HERD-PING\nHERD-ACK 5"))
	f.Add([]byte("HERD-SEAL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := Hello{From: "A", To: "B", Epoch: 1, Nonce: "0123456789abcdef0123456789abcdef"}
		open := newSession(nil, h, "fedcba9876543210fedcba9876543210", 0, false)
		sealed := newSession([]byte("k"), h, "fedcba9876543210fedcba9876543210", 0, false)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if _, body, _, err := open.Receive(line); err == nil {
				ParseUpdate(body)
				ParseSeq(body)
			}
			if _, _, ok, err := sealed.Receive(line); ok && err == nil {
				t.Fatalf("Receive accepted a seal over %q that was never sealed", data)
			}
			ParseHello(line)
			ParseWelcome(line)
			ParseAuth(line)
		}
	})
}

func BenchmarkSession_Write(b *testing.B) {
	h := Hello{From: "Alford", To: "Hamilton", Epoch: 1, Head: 2, Nonce: "0123456789abcdef0123456789abcdef"}
	d := newSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, true)
	a := newSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, false)
	const line = "AT Alford +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"
	var w []byte
	b.ReportAllocs()
	for b.Loop() { // one write of 64 updates, as a busy link sends
		w = w[:0]
		for range 64 {
			w = d.AppendUpdate(w, 12345, line)
		}
		w = d.Seal(w)
		if _, err := receiveAll(a, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(64, "updates/op")
}
