package peer

import (
	"bytes"
	"errors"
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
	wire := bytes.Join([][]byte{[]byte(d.AuthProof()), []byte(a.WelcomeProof()),
		d.Seal(nil, KeyAT, AppendUpdate(nil, 1, "AT A +0.000000000 c +1+1 1"))}, nil)
	if bytes.Contains(wire, []byte("s3cret-value")) {
		t.Error("the secret appears in what is sent")
	}
	if d.AuthProof() == a.WelcomeProof() {
		t.Error("the two proofs are equal: one could be replayed as the other")
	}
}

func TestSession_SealOpen(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		d, a, err := handshake(t, secret, secret)
		if err != nil {
			t.Fatal(err)
		}
		for i := range uint64(3) {
			line := d.Seal(nil, KeyAT, AppendUpdate(nil, i+1, "AT Alford +0.100000000 kiwi +1+1 5.5"))
			kw, body, err := a.Open(line)
			if err != nil || kw != KeyAT {
				t.Fatalf("secret %q: Open(%q) = %q, %v", secret, line, kw, err)
			}
			seq, at, err := ParseUpdate(body)
			if err != nil || seq != i+1 || string(at) != "AT Alford +0.100000000 kiwi +1+1 5.5" {
				t.Fatalf("ParseUpdate(%q) = %d, %q, %v", body, seq, at, err)
			}
		}
		ack := a.Seal(nil, KeyAck, []byte("3"))
		if kw, body, err := d.Open(ack); err != nil || kw != KeyAck || string(body) != "3" {
			t.Errorf("ack: %q %q %v", kw, body, err)
		}
	}
}

func TestSession_RejectsTamperingReplayReorderingAndReflection(t *testing.T) {
	update := func(s *Session, seq uint64) []byte {
		return s.Seal(nil, KeyAT, AppendUpdate(nil, seq, "AT Alford +0.100000000 kiwi +1+1 5.5"))
	}
	t.Run("tampered", func(t *testing.T) {
		d, a, _ := handshake(t, "s3cret", "s3cret")
		line := bytes.Replace(update(d, 1), []byte("+1+1"), []byte("+2+2"), 1)
		if _, _, err := a.Open(line); !errors.Is(err, ErrAuth) {
			t.Errorf("err = %v; want ErrAuth", err)
		}
	})
	t.Run("replayed", func(t *testing.T) {
		d, a, _ := handshake(t, "s3cret", "s3cret")
		line := update(d, 1)
		if _, _, err := a.Open(line); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Open(line); !errors.Is(err, ErrAuth) {
			t.Errorf("second delivery: err = %v; want ErrAuth", err)
		}
	})
	t.Run("reordered", func(t *testing.T) {
		d, a, _ := handshake(t, "s3cret", "s3cret")
		update(d, 1)
		if _, _, err := a.Open(update(d, 2)); !errors.Is(err, ErrAuth) {
			t.Errorf("err = %v; want ErrAuth", err)
		}
	})
	t.Run("from another session", func(t *testing.T) {
		d, _, _ := handshake(t, "s3cret", "s3cret")
		_, other, _ := handshake(t, "s3cret", "s3cret")
		if _, _, err := other.Open(update(d, 1)); !errors.Is(err, ErrAuth) {
			t.Errorf("err = %v; want ErrAuth", err)
		}
	})
	t.Run("reflected", func(t *testing.T) {
		_, a, _ := handshake(t, "s3cret", "s3cret")
		if _, _, err := a.Open(update(a, 1)); !errors.Is(err, ErrAuth) {
			t.Errorf("a line the acceptor sealed was accepted as the dialer's: err = %v", err)
		}
	})
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

// FuzzOpen feeds arbitrary lines to both kinds of receiver: nothing may
// panic, and with a secret nothing unsealed may pass.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("HERD-AT - 1 AT Alford +0.100000000 kiwi +1+1 5.5"))
	f.Add([]byte("HERD-PING 00112233445566778899aabbccddeeff"))
	f.Add([]byte("HERD-ACK"))
	f.Fuzz(func(t *testing.T, line []byte) {
		h := Hello{From: "A", To: "B", Epoch: 1, Nonce: "0123456789abcdef0123456789abcdef"}
		open := NewSession(nil, h, "fedcba9876543210fedcba9876543210", 0, false)
		if kw, body, err := open.Open(line); err == nil {
			ParseUpdate(body)
			ParseSeq(body)
			_ = kw
		}
		sealed := NewSession([]byte("k"), h, "fedcba9876543210fedcba9876543210", 0, false)
		if _, _, err := sealed.Open(line); err == nil {
			t.Fatalf("Open(%q) accepted a line that was never sealed", line)
		}
		ParseHello(line)
		ParseWelcome(line)
		ParseAuth(line)
	})
}

func BenchmarkSession_SealOpen(b *testing.B) {
	h := Hello{From: "Alford", To: "Hamilton", Epoch: 1, Head: 2, Nonce: "0123456789abcdef0123456789abcdef"}
	d := NewSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, true)
	a := NewSession([]byte("s3cret"), h, "fedcba9876543210fedcba9876543210", 0, false)
	body := AppendUpdate(nil, 12345, "AT Alford +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	var line []byte
	b.ReportAllocs()
	for b.Loop() {
		line = d.Seal(line[:0], KeyAT, body)
		if _, _, err := a.Open(line); err != nil {
			b.Fatal(err)
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
