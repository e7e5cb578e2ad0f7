package peer

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrRefused reports a HELLO the acceptor answered with anything but
// WELCOME: it does not know the dialer, or does not take peer links.
var ErrRefused = errors.New("peer: link refused")

// Dialer is the dialing end of a link's handshake. It is driven by lines:
// Start gives the lines that open the link, Welcome takes the acceptor's
// answer and gives the line that ends the handshake. It holds no socket and
// reads no clock; the caller moves the lines and decides how long to wait.
type Dialer struct {
	secret []byte
	hello  Hello
}

// NewDialer prepares the handshake of a link from one server (with the
// epoch and head of its change feed) to a neighbor.
func NewDialer(secret []byte, from, to string, epoch, head uint64) *Dialer {
	return newDialer(secret, Hello{From: from, To: to, Epoch: epoch, Head: head, Nonce: NewNonce()})
}

func newDialer(secret []byte, h Hello) *Dialer {
	h.Proof = HelloProof(secret, h)
	return &Dialer{secret: secret, hello: h}
}

// Hello returns the HELLO the dialer sends.
func (d *Dialer) Hello() Hello { return d.hello }

// Start returns the lines that open the link, each with its newline: HELLO
// and, without a secret, AUTH too, since it then proves nothing and needs
// nothing from WELCOME.
func (d *Dialer) Start() []byte {
	out := append(d.hello.Format(), '\n')
	if d.open() {
		out = d.appendAuth(out, newSession(nil, d.hello, "", 0, true))
	}
	return out
}

func (d *Dialer) open() bool { return len(d.secret) == 0 }

func (d *Dialer) appendAuth(dst []byte, s *Session) []byte {
	dst = append(dst, KeyAuth...)
	dst = append(dst, ' ')
	dst = append(dst, s.AuthProof()...)
	return append(dst, '\n')
}

// Welcome takes the acceptor's answer to Start. It returns the line left to
// send (AUTH, or nothing when Start sent it), the link's session, and the
// acceptor's cursor into the dialer's change feed: the dialer resumes after
// it. An answer other than WELCOME is ErrRefused; a WELCOME whose proof
// fails is ErrAuth.
func (d *Dialer) Welcome(line []byte) (out []byte, s *Session, cursor uint64, err error) {
	w, err := ParseWelcome(line)
	if err != nil || w.From != d.hello.To {
		return nil, nil, 0, fmt.Errorf("%w: %s answered %q: it does not list this server as a neighbor, or one of the two has a peer secret and the other none, or the secrets differ", ErrRefused, d.hello.To, line)
	}
	if d.open() {
		return nil, newSession(nil, d.hello, w.Nonce, w.Cursor, true), w.Cursor, nil
	}
	s = newSession(d.secret, d.hello, w.Nonce, w.Cursor, true)
	if err := CheckProof(w.Proof, s.WelcomeProof()); err != nil {
		return nil, nil, 0, err
	}
	return d.appendAuth(nil, s), s, w.Cursor, nil
}

// Unwelcomed ends a handshake without a secret whose WELCOME has not come
// in time: the link then streams from the start of the change feed, and its
// session skips the WELCOME if it comes later. With a secret nothing can
// stream before WELCOME, so it returns ErrAuth.
func (d *Dialer) Unwelcomed() (*Session, error) {
	if !d.open() {
		return nil, ErrAuth
	}
	s := newSession(nil, d.hello, "", 0, true)
	s.lateWelcome = true
	return s, nil
}

// Acceptor checks the HELLOs that open inbound links to one server. It is
// safe for concurrent use.
type Acceptor struct {
	name     string
	secret   []byte
	neighbor func(name string) bool
	nonces   *NonceCache
}

// nonceMemory is how many HELLO nonces an acceptor remembers to refuse
// replays.
const nonceMemory = 4096

// NewAcceptor returns the acceptor of the server called name; neighbor
// reports whether a server may link to it.
func NewAcceptor(name string, secret []byte, neighbor func(name string) bool) *Acceptor {
	return &Acceptor{name: name, secret: secret, neighbor: neighbor, nonces: NewNonceCache(nonceMemory)}
}

// Hello checks a HELLO line: well formed, from a neighbor to this server,
// proved with the secret, and not seen before. On success the handshake
// goes on with the returned Accepting.
func (a *Acceptor) Hello(line []byte) (*Accepting, error) {
	h, err := ParseHello(line)
	if err != nil {
		return nil, err
	}
	if err := CheckProof(h.Proof, HelloProof(a.secret, h)); err != nil {
		switch {
		case len(a.secret) > 0 && h.Proof == "-":
			return nil, fmt.Errorf("%w: %s has no peer secret, and this server has one", err, h.From)
		case len(a.secret) == 0:
			return nil, fmt.Errorf("%w: %s has a peer secret, and this server has none", err, h.From)
		}
		return nil, fmt.Errorf("%w: %s's proof does not match: the peer secrets differ (or the HELLO was tampered with)", err, h.From)
	}
	if h.To != a.name || !a.neighbor(h.From) {
		return nil, fmt.Errorf("%w: a HELLO from %q to %q", ErrRefused, h.From, h.To)
	}
	if !a.nonces.Fresh(h.Nonce) {
		return nil, fmt.Errorf("%w: a replayed HELLO", ErrAuth)
	}
	return &Accepting{acceptor: a, hello: h, nonce: NewNonce()}, nil
}

// Accepting is an inbound handshake whose HELLO checked out.
type Accepting struct {
	acceptor *Acceptor
	hello    Hello
	nonce    string
	sess     *Session
}

// Hello returns the dialer's HELLO.
func (p *Accepting) Hello() Hello { return p.hello }

// Welcome returns the WELCOME line, with its newline, that tells the
// dialer to resume its change feed after cursor.
func (p *Accepting) Welcome(cursor uint64) []byte {
	p.sess = newSession(p.acceptor.secret, p.hello, p.nonce, cursor, false)
	w := Welcome{From: p.acceptor.name, Cursor: cursor, Nonce: p.nonce, Proof: p.sess.WelcomeProof()}
	return append(w.Format(), '\n')
}

// Auth checks the dialer's AUTH line, sent after Welcome, and returns the
// link's session.
func (p *Accepting) Auth(line []byte) (*Session, error) {
	if p.sess == nil {
		panic("peer: Auth before Welcome")
	}
	proof, err := ParseAuth(line)
	if err != nil {
		return nil, err
	}
	if err := CheckProof(proof, p.sess.AuthProof()); err != nil {
		return nil, err
	}
	return p.sess, nil
}

// isWelcome reports whether line is a WELCOME.
func isWelcome(line []byte) bool {
	kw, _, _ := bytes.Cut(line, []byte{' '})
	return string(kw) == KeyWelcome
}
