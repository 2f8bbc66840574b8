package sampler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/counter"
)

// rampSource is one counter domain whose counter is 1 µJ per µs since it was made (1 W).
type rampSource struct {
	mu     sync.Mutex
	t0     int64
	reads  int
	closed bool
}

func (r *rampSource) Read(context.Context, bool) ([]Reading, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	now := clock.Mono()
	rd := NewReading("d")
	rd.MonoNS, rd.Counter = now, uint64((now-r.t0)/1000)
	return []Reading{rd}, nil
}

func (r *rampSource) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func rampSessions(src *rampSource, interval time.Duration) *Sessions {
	d := sdk.Domain{ID: "d", Kind: sdk.DomainGPU, Method: sdk.MethodCounter, Available: true}
	return &Sessions{Offer: func(context.Context) (*Offer, error) {
		return &Offer{Domains: []sdk.Domain{d}, Policy: Policy{DefaultInterval: interval},
			Open: func(_ context.Context, p Plan) (*Opened, error) {
				return &Opened{Source: src, Interval: p.Interval, Domains: []Spec{{Domain: d, Counter: counter.Config{}}}}, nil
			}}, nil
	}}
}

// TestSessionSamplesEveryInterval: a 20 ms session sampled for about 300 ms has a reading per
// tick on a steady clock, and its energy is the ramp's (1 W between the first and last samples).
func TestSessionSamplesEveryInterval(t *testing.T) {
	src := &rampSource{t0: clock.Mono()}
	s := rampSessions(src, 20*time.Millisecond)
	ctx := context.Background()
	sess, err := s.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	m, err := s.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	samples := m.Domains[0].Samples
	// Start and Stop each add a reading, and every tick one more; a tick that came while the
	// sampling thread was held up (a loaded machine) is folded into the next reading and
	// counted in the sampler_ticks_missed finding, so readings plus missed ticks are the ticks.
	var missed int
	for _, f := range m.Findings {
		if f.Code == "sampler_ticks_missed" {
			if _, err := fmt.Sscanf(f.Message, "%d of", &missed); err != nil {
				t.Fatalf("finding %q: %v", f.Message, err)
			}
		}
	}
	want := int((m.StopMonoNS-m.StartMonoNS)/int64(20*time.Millisecond)) + 2
	if got := len(samples) + missed; got < want-2 || got > want+1 {
		t.Errorf("%d samples and %d missed ticks over %v at 20 ms, want %d in all", len(samples), missed, time.Duration(m.StopMonoNS-m.StartMonoNS), want)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].MonoNS <= samples[i-1].MonoNS {
			t.Fatalf("sample %d at %d is not after %d", i, samples[i].MonoNS, samples[i-1].MonoNS)
		}
	}
	first, last := samples[0], samples[len(samples)-1]
	wantUJ := (last.MonoNS - first.MonoNS) / 1000 // 1 W is 1 µJ per µs
	if got := int64(last.Energy - first.Energy); got < wantUJ-1 || got > wantUJ+1 {
		t.Errorf("energy %d µJ between the first and last samples, want %d µJ (1 W × their distance)", got, wantUJ)
	}
	if !src.closed {
		t.Error("the source was not closed at Stop")
	}
}

// TestStopDoesNotWaitForTheNextTick: with an hour's interval, Stop returns (it wakes the
// sampling thread) and has taken its own last reading.
func TestStopDoesNotWaitForTheNextTick(t *testing.T) {
	src := &rampSource{t0: clock.Mono()}
	s := rampSessions(src, time.Hour)
	ctx := context.Background()
	sess, err := s.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *sdk.Measurement)
	go func() {
		m, err := s.Stop(ctx, sess.ID)
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	select {
	case m := <-done:
		if n := len(m.Domains[0].Samples); n != 2 {
			t.Errorf("%d samples, want 2 (start and stop)", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("Stop still waiting for the hour-long tick after a minute")
	}
}

// TestFDTicker: Wait returns on ticks, returns errTickerStopped after Stop (also a Stop made
// before the Wait), and Stop after Close is harmless.
func TestFDTicker(t *testing.T) {
	tk, err := newFDTicker(5 * time.Millisecond)
	if err != nil {
		t.Skipf("timerfd refused here (the sampler falls back to time.Ticker): %v", err)
	}
	for range 3 {
		if n, err := tk.Wait(); err != nil || n < 1 {
			t.Fatalf("Wait: %d ticks, %v", n, err)
		}
	}
	// A caller busy for 12 periods gets them back as one Wait that counts them all.
	start := clock.Mono()
	time.Sleep(60 * time.Millisecond)
	n, err := tk.Wait()
	if elapsed := time.Duration(clock.Mono() - start); err != nil || n < 12 || n > uint64(elapsed/(5*time.Millisecond))+1 {
		t.Fatalf("Wait after %v busy: %d ticks, %v; want the ~%d that expired", elapsed, n, err, elapsed/(5*time.Millisecond))
	}
	tk.Stop()
	if _, err := tk.Wait(); err != errTickerStopped {
		t.Fatalf("Wait after Stop = %v, want errTickerStopped", err)
	}
	tk.Close()
	tk.Stop()
	tk.Close()
}
