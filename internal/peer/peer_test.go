package peer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func handshake(t *testing.T, dialerSecret, acceptorSecret string) (dialer, acceptor *Session, err error) {
	t.Helper()
	h := Hello{From: "Alford", To: "Hamilton", Epoch: 42, Head: 99, Nonce: NewNonce()}
	h.Proof = HelloProof([]byte(dialerSecret), h)
	parsed, perr := ParseHello(h.Format())
	if perr != nil || parsed != h {
		t.Fatalf("ParseHello(Format(%+v)) = %+v, %v", h, parsed, perr)
	}
	if err := CheckProof(parsed.Proof, HelloProof([]byte(acceptorSecret), parsed)); err != nil {
		return nil, nil, err
	}
	acceptor = NewSession([]byte(acceptorSecret), parsed, NewNonce(), 17, false)
	w := Welcome{From: "Hamilton", Cursor: 17, Nonce: acceptor.AcceptorNonce(), Proof: acceptor.WelcomeProof()}
	gotW, perr := ParseWelcome(w.Format())
	if perr != nil || gotW != w {
		t.Fatalf("ParseWelcome(Format(%+v)) = %+v, %v", w, gotW, perr)
	}
	dialer = NewSession([]byte(dialerSecret), h, gotW.Nonce, gotW.Cursor, true)
	if err := CheckProof(gotW.Proof, dialer.WelcomeProof()); err != nil {
		return nil, nil, err
	}
	proof, perr := ParseAuth([]byte(KeyAuth + " " + dialer.AuthProof()))
	if perr != nil {
		t.Fatal(perr)
	}
	return dialer, acceptor, CheckProof(proof, acceptor.AuthProof())
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name             string
		dialer, acceptor string
		wantErr          bool
	}{
		{"no secret", "", "", false},
		{"same secret", "s3cret", "s3cret", false},
		{"different secrets", "s3cret", "other", true},
		{"dialer without secret", "", "s3cret", true},
		{"acceptor without secret", "s3cret", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := handshake(t, tt.dialer, tt.acceptor)
			if (err != nil) != tt.wantErr {
				t.Errorf("handshake err = %v; want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestHandshake_SecretNeverOnTheWire(t *testing.T) {
	d, a, err := handshake(t, "s3cret-value", "s3cret-value")
	if err != nil {
		t.Fatal(err)
	}
	sent := d.Seal(d.Append(nil, KeyAT, AppendUpdate(nil, 1, "AT A +0.000000000 c +1+1 1")))
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
				w = d.Append(w, KeyAT, AppendUpdate(nil, 3*round+i+1, "AT Alford +0.100000000 kiwi +1+1 5.5"))
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
		ack := a.Seal(a.Append(nil, KeyAck, []byte("3")))
		if applied, err := receiveAll(d, ack); err != nil || len(applied) != 1 || applied[0] != KeyAck+" 3" {
			t.Errorf("ack: %q %v", applied, err)
		}
	}
}

func TestSession_RejectsTamperingReplayReorderingAndReflection(t *testing.T) {
	write := func(s *Session, seq uint64) []byte {
		return s.Seal(s.Append(nil, KeyAT, AppendUpdate(nil, seq, "AT Alford +0.100000000 kiwi +1+1 5.5")))
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
		open := NewSession(nil, h, "fedcba9876543210fedcba9876543210", 0, false)
		sealed := NewSession([]byte("k"), h, "fedcba9876543210fedcba9876543210", 0, false)
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
	d := NewSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, true)
	a := NewSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, false)
	body := AppendUpdate(nil, 12345, "AT Alford +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	var w []byte
	b.ReportAllocs()
	for b.Loop() { // one write of 64 updates, as a busy link sends
		w = w[:0]
		for range 64 {
			w = d.Append(w, KeyAT, body)
		}
		w = d.Seal(w)
		if _, err := receiveAll(a, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(64, "updates/op")
}
