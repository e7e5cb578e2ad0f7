package store

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// MaxEntrySize is the largest entry Append and Snapshot.Write accept. Replay
// treats a frame that claims a longer payload as corrupt.
const MaxEntrySize = 1 << 20

// frameHeaderSize is the size of a frame's length and checksum fields.
const frameHeaderSize = 8

// An end frame closes a finished file: a snapshot when it is written, a
// segment when the next one begins. Its length field is endFrameMarker,
// which no entry's can be, and its payload is its own offset in the file,
// 8 bytes. A file cut short exactly at a frame boundary reads as valid
// frame by frame; the missing end frame is what tells it from a whole one.
const (
	endFrameMarker = math.MaxUint32
	endPayloadSize = 8
	endFrameSize   = frameHeaderSize + endPayloadSize
)

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

// appendEndFrame appends the end frame of a file whose frames take the
// first offset bytes.
func appendEndFrame(dst []byte, offset int64) []byte {
	at := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, endFrameMarker)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(offset))
	binary.LittleEndian.PutUint32(dst[at+4:], frameChecksum(dst[at:at+4], dst[at+frameHeaderSize:]))
	return dst
}

// payloadSize returns the payload size a frame's length field gives, and
// whether it is a possible one.
func payloadSize(length uint32) (int64, bool) {
	if length == endFrameMarker {
		return endPayloadSize, true
	}
	return int64(length), length <= MaxEntrySize
}

// parseFrame reports whether b starts with a whole, valid frame, an entry's
// or an end frame, and if so returns its payload (aliasing b).
func parseFrame(b []byte) (payload []byte, ok bool) {
	if len(b) < frameHeaderSize {
		return nil, false
	}
	n, ok := payloadSize(binary.LittleEndian.Uint32(b[0:4]))
	if !ok || int64(len(b)-frameHeaderSize) < n {
		return nil, false
	}
	payload = b[frameHeaderSize : frameHeaderSize+n]
	if frameChecksum(b[0:4], payload) != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, false
	}
	return payload, true
}
