// Package peer is the line protocol between neighbor servers: a handshake
// that proves both sides hold the herd's secret, and the authenticated
// messages of a link. It is pure: it builds and checks lines, and the server
// package moves them.
//
// Each server dials each neighbor and sends it its own changes over that
// connection; the neighbor answers with acknowledgements only. Two links per
// pair, one per direction, so there is no double-dial race to settle.
//
//	dialer                                   acceptor
//	HERD-HELLO 1 <from> <to> <epoch> <head> <nonceA> <proof>  ->
//	                                        <- HERD-WELCOME <to> <cursor> <nonceB> <proof>
//	HERD-AUTH <proof>                          ->
//	HERD-AT <seq> <AT line>                    ->   (one per changed client)
//	HERD-MARK <seq>                            ->   (skipped up to seq)
//	HERD-PING                                  ->   (when idle)
//	HERD-SEAL <mac>                            ->   (after each write's messages)
//	                                        <- HERD-ACK <seq>, HERD-SEAL <mac>   (every heartbeat)
//
// The cursor in WELCOME is the last of the dialer's sequence numbers that the
// acceptor applied, for the dialer's epoch; the dialer resumes after it.
// MARK moves that cursor past records the dialer skipped (superseded ones,
// and those that came from the acceptor), so a link resumes where it
// really stopped. Records up to the head announced in HELLO are catch-up;
// later ones are live.
//
// With a secret, each proof is an HMAC-SHA256 keyed by the secret, with a
// different label per step so that no proof can be replayed as another, and
// the secret never crosses the wire. The dialer proves itself first, in
// HELLO (over its nonce, both names, its epoch and head), so a stranger's
// HELLO is answered as an invalid command; acceptors remember recent HELLO
// nonces, so a replayed one is too. WELCOME's proof covers both nonces and
// the cursor, and AUTH's both nonces, so a live session needs the secret at
// both ends.
//
// After the handshake, each write ends with a SEAL: a MAC, keyed by a
// per-session, per-direction key derived from the same values, over a seal
// counter and every message since the previous seal. A receiver applies
// nothing until the seal that covers it checks out, so a replayed,
// reordered, forged or tampered message fails and drops the link; one MAC
// per write rather than per message keeps the cost off each update. Without
// a secret there are no seals and every proof is "-".
package peer

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"sync"
)

// Version is the protocol version sent in HELLO.
const Version = "1"

// Keywords that start peer lines. Every one starts with Prefix, which no
// client command does.
const (
	Prefix     = "HERD-"
	KeyHello   = "HERD-HELLO"
	KeyWelcome = "HERD-WELCOME"
	KeyAuth    = "HERD-AUTH"
	KeyAT      = "HERD-AT"
	KeyMark    = "HERD-MARK"
	KeyPing    = "HERD-PING"
	KeySeal    = "HERD-SEAL"
	KeyAck     = "HERD-ACK"
)

// MaxHandshakeLine is the longest HELLO or AUTH line an acceptor reads,
// whatever its limit on a client's lines: a HELLO with a secret is about
// 170 bytes and the two server names.
const MaxHandshakeLine = 4 << 10

// Errors of the peer protocol.
var (
	ErrMalformed = errors.New("peer: malformed line")
	ErrAuth      = errors.New("peer: authentication failed")
)

// Hello opens a link.
type Hello struct {
	From, To string
	Epoch    uint64
	Head     uint64 // the dialer's latest sequence number when it dialed
	Nonce    string
	Proof    string // see HelloProof
}

// Welcome answers a Hello.
type Welcome struct {
	From   string // the acceptor
	Cursor uint64
	Nonce  string
	Proof  string
}

// NewNonce returns a fresh random nonce.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Format renders h as a line.
func (h *Hello) Format() []byte {
	return fmtLine(KeyHello, Version, h.From, h.To, strconv.FormatUint(h.Epoch, 10), strconv.FormatUint(h.Head, 10), h.Nonce, h.Proof)
}

// ParseHello reads a HELLO line.
func ParseHello(line []byte) (Hello, error) {
	f := bytes.Fields(line)
	if len(f) != 8 || string(f[0]) != KeyHello || string(f[1]) != Version {
		return Hello{}, ErrMalformed
	}
	epoch, err1 := strconv.ParseUint(string(f[4]), 10, 64)
	head, err2 := strconv.ParseUint(string(f[5]), 10, 64)
	if err1 != nil || err2 != nil || !validNonce(f[6]) {
		return Hello{}, ErrMalformed
	}
	return Hello{From: string(f[2]), To: string(f[3]), Epoch: epoch, Head: head, Nonce: string(f[6]), Proof: string(f[7])}, nil
}

// HelloProof is the dialer's first proof, sent in HELLO: an HMAC keyed by
// the secret over everything else in it; "-" without a secret.
func HelloProof(secret []byte, h Hello) string {
	if len(secret) == 0 {
		return "-"
	}
	m := hmac.New(sha256.New, secret)
	for _, part := range []string{"herd-hello", h.From, h.To, strconv.FormatUint(h.Epoch, 10), strconv.FormatUint(h.Head, 10), h.Nonce} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Format renders w as a line.
func (w *Welcome) Format() []byte {
	return fmtLine(KeyWelcome, w.From, strconv.FormatUint(w.Cursor, 10), w.Nonce, w.Proof)
}

// ParseWelcome reads a WELCOME line.
func ParseWelcome(line []byte) (Welcome, error) {
	f := bytes.Fields(line)
	if len(f) != 5 || string(f[0]) != KeyWelcome {
		return Welcome{}, ErrMalformed
	}
	cursor, err := strconv.ParseUint(string(f[2]), 10, 64)
	if err != nil || !validNonce(f[3]) {
		return Welcome{}, ErrMalformed
	}
	return Welcome{From: string(f[1]), Cursor: cursor, Nonce: string(f[3]), Proof: string(f[4])}, nil
}

// ParseAuth reads an AUTH line and returns its proof.
func ParseAuth(line []byte) (string, error) {
	f := bytes.Fields(line)
	if len(f) != 2 || string(f[0]) != KeyAuth {
		return "", ErrMalformed
	}
	return string(f[1]), nil
}

func validNonce(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	_, err := hex.Decode(make([]byte, 16), b)
	return err == nil
}

func fmtLine(fields ...string) []byte {
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, f...)
	}
	return b
}

// Session holds what both ends of one link agree on after HELLO and WELCOME.
// Its methods compute the handshake proofs and seal and open the messages.
type Session struct {
	secret []byte
	hello  Hello
	cursor uint64
	nonceB string

	// sendMAC and recvMAC are HMAC-SHA256 states keyed for each direction
	// (keying is the costly part), each running over the messages since the
	// last seal; nil without a secret. Sending and receiving use their own
	// state, so one goroutine may send while another receives.
	sendMAC, recvMAC   hash.Hash
	sendOpen, recvOpen bool   // a group of messages awaits its seal
	sent, received     uint64 // seal counters, per direction
	macBuf             [sha256.Size]byte
	openBuf            [sha256.Size]byte
	// lateWelcome: the dialer streams before WELCOME came (see
	// Dialer.Unwelcomed), so WELCOME may still be the first line back.
	lateWelcome bool
}

// newSession prepares a session for the link described by h, answered with
// the acceptor's nonce and cursor. dialer says which end this is. A nil or
// empty secret makes every proof and MAC "-".
func newSession(secret []byte, h Hello, acceptorNonce string, cursor uint64, dialer bool) *Session {
	s := &Session{secret: secret, hello: h, cursor: cursor, nonceB: acceptorNonce}
	if len(secret) > 0 {
		forward, backward := s.derive("herd-forward"), s.derive("herd-backward")
		if !dialer {
			forward, backward = backward, forward
		}
		s.sendMAC, s.recvMAC = hmac.New(sha256.New, forward), hmac.New(sha256.New, backward)
	}
	return s
}

func (s *Session) derive(label string) []byte {
	m := hmac.New(sha256.New, s.secret)
	for _, part := range []string{label, s.hello.From, s.hello.To, strconv.FormatUint(s.hello.Epoch, 10),
		strconv.FormatUint(s.hello.Head, 10), s.hello.Nonce, s.nonceB, strconv.FormatUint(s.cursor, 10)} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// WelcomeProof is the acceptor's proof, sent in WELCOME.
func (s *Session) WelcomeProof() string { return s.proof("herd-welcome") }

// AuthProof is the dialer's proof, sent in AUTH.
func (s *Session) AuthProof() string { return s.proof("herd-auth") }

func (s *Session) proof(label string) string {
	if len(s.secret) == 0 {
		return "-"
	}
	return hex.EncodeToString(s.derive(label))
}

// CheckProof compares a received proof with the expected one in constant time.
func CheckProof(got, want string) error {
	if !hmac.Equal([]byte(got), []byte(want)) {
		return ErrAuth
	}
	return nil
}

// macLen is the length of a seal's MAC in hex digits (128 bits).
const macLen = 32

// Append appends a message line (keyword, then body if any) and covers it
// with the next seal.
func (s *Session) Append(dst []byte, keyword string, body []byte) []byte {
	start := len(dst)
	dst = append(dst, keyword...)
	if len(body) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, body...)
	}
	return s.cover(append(dst, '\n'), start)
}

// AppendUpdate appends an AT message (sequence number and AT line),
// covered by the next seal.
func (s *Session) AppendUpdate(dst []byte, seq uint64, atLine string) []byte {
	start := len(dst)
	dst = append(dst, KeyAT...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	dst = append(dst, atLine...)
	return s.cover(append(dst, '\n'), start)
}

// AppendMark appends a MARK message, covered by the next seal.
func (s *Session) AppendMark(dst []byte, seq uint64) []byte { return s.appendSeq(dst, KeyMark, seq) }

// AppendAck appends an ACK message, covered by the next seal.
func (s *Session) AppendAck(dst []byte, seq uint64) []byte { return s.appendSeq(dst, KeyAck, seq) }

func (s *Session) appendSeq(dst []byte, keyword string, seq uint64) []byte {
	start := len(dst)
	dst = append(dst, keyword...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, seq, 10)
	return s.cover(append(dst, '\n'), start)
}

// cover adds the message dst[start:] to what the next seal authenticates.
func (s *Session) cover(dst []byte, start int) []byte {
	if s.sendMAC != nil {
		s.sendOpen = s.feed(s.sendMAC, s.sendOpen, s.sent, dst[start:])
	}
	return dst
}

// Seal appends the SEAL line that authenticates every message appended
// since the last one; without a secret, or with nothing to cover, it
// appends nothing. Call it before each write.
func (s *Session) Seal(dst []byte) []byte {
	if s.sendMAC == nil || !s.sendOpen {
		return dst
	}
	dst = append(dst, KeySeal...)
	dst = append(dst, ' ')
	dst = hex.AppendEncode(dst, s.sendMAC.Sum(s.macBuf[:0])[:macLen/2])
	s.sent++
	s.sendOpen = false
	return append(dst, '\n')
}

// Receive takes one received line (without its newline). For a message it
// returns the keyword and body, which the caller must hold back until a
// receive reports sealed: then every message since the previous seal is
// authentic. Without a secret every message is sealed at once. A WELCOME
// that comes after Dialer.Unwelcomed is skipped: Receive returns no keyword
// and sealed false. Any error is fatal to the link.
func (s *Session) Receive(line []byte) (keyword string, body []byte, sealed bool, err error) {
	if s.lateWelcome {
		s.lateWelcome = false
		if isWelcome(line) {
			return "", nil, false, nil
		}
	}
	kw, body, _ := bytes.Cut(line, []byte{' '})
	if !bytes.HasPrefix(kw, []byte(Prefix)) {
		return "", nil, false, ErrMalformed
	}
	if s.recvMAC == nil {
		if string(kw) == KeySeal {
			return "", nil, false, ErrAuth
		}
		return internKeyword(kw), body, true, nil
	}
	if string(kw) != KeySeal {
		s.recvOpen = s.feed(s.recvMAC, s.recvOpen, s.received, line)
		s.recvMAC.Write([]byte{'\n'})
		return internKeyword(kw), body, false, nil
	}
	var got [macLen / 2]byte
	if !s.recvOpen || len(body) != macLen {
		return "", nil, false, ErrAuth
	}
	if _, err := hex.Decode(got[:], body); err != nil {
		return "", nil, false, ErrAuth
	}
	if !hmac.Equal(got[:], s.recvMAC.Sum(s.openBuf[:0])[:macLen/2]) {
		return "", nil, false, ErrAuth
	}
	s.received++
	s.recvOpen = false
	return "", nil, true, nil
}

// internKeyword returns kw as a string, without allocating for the keywords of
// the protocol: every message received goes through it.
func internKeyword(kw []byte) string {
	for _, k := range [...]string{KeyAT, KeyMark, KeyPing, KeyAck, KeyWelcome, KeyHello, KeyAuth} {
		if string(kw) == k {
			return k
		}
	}
	return string(kw)
}

// feed adds b to a direction's running MAC, starting a new group (keyed
// state reset, then the seal counter) if none is open. It returns true: a
// group is open.
func (s *Session) feed(m hash.Hash, open bool, counter uint64, b []byte) bool {
	if !open {
		m.Reset()
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], counter)
		m.Write(c[:])
	}
	m.Write(b)
	return true
}

// ParseUpdate splits the body of an AT message.
func ParseUpdate(body []byte) (seq uint64, atLine []byte, err error) {
	seqField, line, ok := bytes.Cut(body, []byte{' '})
	seq, perr := strconv.ParseUint(string(seqField), 10, 64)
	if !ok || perr != nil {
		return 0, nil, ErrMalformed
	}
	return seq, line, nil
}

// ParseSeq reads the body of an ACK message.
func ParseSeq(body []byte) (uint64, error) {
	seq, err := strconv.ParseUint(string(body), 10, 64)
	if err != nil {
		return 0, ErrMalformed
	}
	return seq, nil
}

// Cursor returns where the dialer's feed resumes.
func (s *Session) Cursor() uint64 { return s.cursor }

// NonceCache remembers the most recent HELLO nonces, so that a replayed
// HELLO is refused. It is safe for concurrent use.
type NonceCache struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string // insertion order, to forget the oldest
	next int
}

// NewNonceCache remembers up to size nonces.
func NewNonceCache(size int) *NonceCache {
	return &NonceCache{seen: make(map[string]struct{}, size), ring: make([]string, size)}
}

// Fresh records nonce and reports whether it was not seen before.
func (c *NonceCache) Fresh(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[nonce]; ok {
		return false
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.seen, old)
	}
	c.ring[c.next] = nonce
	c.next = (c.next + 1) % len(c.ring)
	c.seen[nonce] = struct{}{}
	return true
}
