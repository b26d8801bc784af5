package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the manner of HdrHistogram:
// each power of two of nanoseconds is split into 1<<subBits linear
// buckets, so every recorded value is kept within 1/(1<<subBits) (0.8 %
// for subBits 7) of its true value from 1 ns to hours, in a fixed array
// and without allocation per sample. Percentiles are read back as the
// upper edge of the bucket that holds them (never optimistic).
type hist struct {
	counts [64 << subBits]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const subBits = 7

// index is the bucket of v (ns): values below 1<<subBits are exact; above,
// the exponent picks the group and the next subBits bits the bucket.
func index(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1))
	shift := e - subBits
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// upper is the largest value that falls into bucket i.
func upper(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	m := uint64(i&(1<<subBits-1)) + 1<<subBits
	return (m+1)<<shift - 1
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[index(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// quantile is the value at or below which a share q of the samples lie.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(upper(i)), h.max)
		}
	}
	return h.max
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
