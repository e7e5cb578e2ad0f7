package wire

import "strconv"

// Time is a POSIX time with nanosecond precision, as a client sends it.
// It is kept as seconds and nanoseconds so that any int64 second count
// compares and subtracts exactly.
type Time struct {
	Sec  int64
	Nsec int32 // [0, 1e9)
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Time) Compare(u Time) int {
	switch {
	case t.Sec < u.Sec:
		return -1
	case t.Sec > u.Sec:
		return 1
	case t.Nsec < u.Nsec:
		return -1
	case t.Nsec > u.Nsec:
		return 1
	}
	return 0
}

// Add returns t moved by nanos nanoseconds. t must be a sane time (a
// server's clock, not a client's), so that the seconds cannot overflow.
func (t Time) Add(nanos int64) Time {
	u := UnixTime(int64(t.Nsec) + nanos)
	u.Sec += t.Sec
	return u
}

// UnixTime converts nanoseconds since the epoch to a Time.
func UnixTime(nanos int64) Time {
	sec, nsec := nanos/1e9, nanos%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return Time{Sec: sec, Nsec: int32(nsec)}
}

// ParseTime reads POSIX seconds: digits, optionally followed by a point and
// one to nine fractional digits.
func ParseTime(b []byte) (Time, bool) {
	var t Time
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if t.Sec > (1<<63-1-d)/10 {
			return Time{}, false
		}
		t.Sec = t.Sec*10 + d
	}
	if i == 0 {
		return Time{}, false
	}
	if i == len(b) {
		return t, true
	}
	if b[i] != '.' {
		return Time{}, false
	}
	frac := b[i+1:]
	if len(frac) == 0 || len(frac) > 9 {
		return Time{}, false
	}
	scale := int32(1e9)
	for _, c := range frac {
		if c < '0' || c > '9' {
			return Time{}, false
		}
		scale /= 10
		t.Nsec += int32(c-'0') * scale
	}
	return t, true
}

// AppendSkew appends received minus sent with an explicit sign and exactly
// nine fractional digits, computed in integer nanoseconds.
func AppendSkew(dst []byte, received, sent Time) []byte {
	hi, lo, sign := received, sent, byte('+')
	if received.Compare(sent) < 0 {
		hi, lo, sign = sent, received, '-'
	}
	sec, nsec := hi.Sec-lo.Sec, hi.Nsec-lo.Nsec
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	dst = append(dst, sign)
	dst = appendUint(dst, uint64(sec))
	dst = append(dst, '.')
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	return append(dst, frac[:]...)
}

// ReceiveTime inverts AppendSkew: from a client's time and the skew in the
// AT line a server made for it, it returns when that server received the
// IAMAT. ok is false for a malformed skew, or one too large to add.
func ReceiveTime(sent Time, skew []byte) (received Time, ok bool) {
	const maxDigits = 18 // keeps every sum below 2^63
	if !validSkew(skew) || len(skew) > 1+maxDigits+1+9 || sent.Sec > 1e18 || sent.Sec < -1e18 {
		return Time{}, false
	}
	var sec, nsec int64
	for _, c := range skew[1 : len(skew)-10] {
		sec = 10*sec + int64(c-'0')
	}
	for _, c := range skew[len(skew)-9:] {
		nsec = 10*nsec + int64(c-'0')
	}
	if skew[0] == '-' {
		sec, nsec = -sec, -nsec
	}
	received = UnixTime(int64(sent.Nsec) + nsec)
	received.Sec += sent.Sec + sec
	return received, true
}

func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// Location is a point in decimal degrees.
type Location struct {
	Lat, Lng float64
}

// ParseLocation reads ISO 6709 decimal degrees: a sign and a latitude, then a
// sign and a longitude, as in +34.068930-118.445127. Latitude must lie in
// [-90, 90] and longitude in [-180, 180].
func ParseLocation(b []byte) (Location, bool) {
	if len(b) < 4 || (b[0] != '+' && b[0] != '-') {
		return Location{}, false
	}
	split := -1
	for i := 1; i < len(b); i++ {
		if b[i] == '+' || b[i] == '-' {
			split = i
			break
		}
	}
	if split < 0 {
		return Location{}, false
	}
	lat, ok1 := parseDegrees(b[:split], 90)
	lng, ok2 := parseDegrees(b[split:], 180)
	return Location{Lat: lat, Lng: lng}, ok1 && ok2
}

// parseDegrees reads a signed decimal whose magnitude is at most limit.
func parseDegrees(b []byte, limit uint64) (float64, bool) {
	d, ok := parseDecimal(b[1:])
	if !ok || !d.atMost(limit) {
		return 0, false
	}
	if b[0] == '-' {
		return -d.value, true
	}
	return d.value, true
}

// decimal is an unsigned decimal number. Range checks use its exact integer
// part and whether any fractional digit is not zero, never the rounded
// float, so 50.000000000000001 is above 50 and 0.0000000000000000001 above 0.
type decimal struct {
	value      float64 // for arithmetic; may be rounded
	integer    uint64  // the digits before the point
	fractionNZ bool    // a digit after the point is not zero
}

// atMost reports whether d <= limit.
func (d decimal) atMost(limit uint64) bool {
	return d.integer < limit || d.integer == limit && !d.fractionNZ
}

// positive reports whether d > 0.
func (d decimal) positive() bool { return d.integer > 0 || d.fractionNZ }

// exactDigits is the most decimal digits whose integer is exact in a float64
// (10^15 < 2^53); exactPow10 holds the powers of ten such a number may be
// scaled by, all exact too.
const exactDigits = 15

var exactPow10 = [exactDigits + 1]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseDecimal reads digits with an optional fractional part: 12, 12.5, .5
// and 12. are accepted; signs, exponents and anything else are not.
func parseDecimal(b []byte) (decimal, bool) {
	var d decimal
	point := len(b)
	digits := 0
	var mantissa uint64 // every digit, while there are at most exactDigits
	for i, c := range b {
		switch {
		case c == '.' && point == len(b):
			point = i
		case c >= '0' && c <= '9':
			digits++
			if digits <= exactDigits {
				mantissa = mantissa*10 + uint64(c-'0')
			}
			if point < len(b) {
				d.fractionNZ = d.fractionNZ || c != '0'
				continue
			}
			if d.integer >= 1e17 {
				return decimal{}, false // more than 18 integer digits: out of every range
			}
			d.integer = d.integer*10 + uint64(c-'0')
		default:
			return decimal{}, false
		}
	}
	if digits == 0 {
		return decimal{}, false
	}
	if digits <= exactDigits {
		// Both numbers are exact in a float64, so one division rounds
		// correctly: the result is ParseFloat's, without its cost.
		fraction := max(len(b)-point-1, 0)
		d.value = float64(mantissa) / exactPow10[fraction]
		return d, true
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return decimal{}, false
	}
	d.value = v
	return d, true
}
