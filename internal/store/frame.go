package store

import (
	"encoding/binary"
	"hash/crc32"
)

// MaxEntrySize is the largest entry Append and Snapshot.Write accept. Replay
// treats a frame that claims a longer payload as corrupt.
const MaxEntrySize = 1 << 20

// frameHeaderSize is the size of a frame's length and checksum fields.
const frameHeaderSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameChecksum is the CRC-32C of a frame's length field followed by its
// payload. Covering the length means a zero-filled tail (which some file
// systems leave after a crash) never parses as a run of empty entries.
func frameChecksum(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// appendFrame appends a frame carrying entry to dst. The checksum is taken
// over dst's own copy of the length, so nothing escapes to the heap.
func appendFrame(dst, entry []byte) []byte {
	at := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entry)))
	dst = binary.LittleEndian.AppendUint32(dst, frameChecksum(dst[at:at+4], entry))
	return append(dst, entry...)
}

// parseFrame reports whether b starts with a whole, valid frame, and if so
// returns its payload (aliasing b).
func parseFrame(b []byte) (payload []byte, ok bool) {
	if len(b) < frameHeaderSize {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > MaxEntrySize || uint64(len(b)-frameHeaderSize) < uint64(n) {
		return nil, false
	}
	payload = b[frameHeaderSize : frameHeaderSize+int(n)]
	if frameChecksum(b[0:4], payload) != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, false
	}
	return payload, true
}
