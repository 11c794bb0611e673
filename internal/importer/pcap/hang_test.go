package pcap

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

func TestHangHunt(t *testing.T) {
	hello := clientHelloBytes(t, "fuzz.example", "h2")
	var seeds [][]byte
	for _, link := range []uint32{linkEthernet, linkSLL2, linkNull, linkRaw} {
		s := newSynth(t, link)
		c := s.dial("10.0.0.2:40000", "10.0.0.9:443")
		c.handshake()
		c.send(true, hello[:200])
		c.send(true, hello[200:])
		data := s.pcap(link == linkSLL2, link == linkNull)
		seeds = append(seeds, data)
		if link == linkEthernet {
			seeds = append(seeds, s.pcapng())
		}
	}
	for i, s := range seeds {
		start := time.Now()
		for k := 0; k < 100; k++ {
			read(context.Background(), bytes.NewReader(s), func(flow.Flow, []int) error { return nil }, nil)
		}
		t.Logf("seed %d: %v per read", i, time.Since(start)/100)
	}
	rng := rand.New(rand.NewSource(1))
	var worst time.Duration
	var worstIn []byte
	for i := 0; i < 20000; i++ {
		d := append([]byte(nil), seeds[rng.Intn(len(seeds))]...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			d[rng.Intn(len(d))] = byte(rng.Intn(256))
		}
		start := time.Now()
		read(context.Background(), bytes.NewReader(d), func(flow.Flow, []int) error { return nil }, nil)
		if el := time.Since(start); el > worst {
			worst, worstIn = el, d
		}
	}
	t.Logf("worst %v", worst)
	start := time.Now()
	read(context.Background(), bytes.NewReader(worstIn), func(flow.Flow, []int) error { return nil }, nil)
	t.Logf("again %v", time.Since(start))
}

func BenchmarkSeed(b *testing.B) {
	s := newSynth(b, linkEthernet)
	c := s.dial("10.0.0.2:40000", "10.0.0.9:443")
	c.handshake()
	data := s.pcap(false, false)
	for b.Loop() {
		read(context.Background(), bytes.NewReader(data), func(flow.Flow, []int) error { return nil }, nil)
	}
}
