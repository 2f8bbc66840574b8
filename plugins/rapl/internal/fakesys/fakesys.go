package fakesys

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk/clock"
)

// Zone is one zone of the fake tree.
type Zone struct {
	Dir      string  // directory under class/powercap, e.g. "intel-rapl:0"
	Name     string  // content of the name file, e.g. "package-0"
	Watts    float64 // the constant power the counter advances at
	Range    uint64  // max_energy_range_uj; the counter wraps to 0 after it
	MaxPower uint64  // constraint_0_max_power_uw; 0 writes no constraint
	Start    uint64  // the counter at the start, µJ
	// ResetAfter, when set, makes the counter jump back to ResetTo that long after the start.
	ResetAfter time.Duration
	ResetTo    uint64
}

// Tree is a fake powercap tree being written.
type Tree struct {
	root  string
	zones []Zone
	t0    int64

	mu       sync.Mutex
	raw      map[string]uint64
	wraps    map[string]int
	resetNS  map[string]int64
	lastT    int64
	maxStale time.Duration
	err      error
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// New writes the tree under root (root/class/powercap/<dir>/…) with every counter at its start
// value, stamped now.
func New(root string, zones ...Zone) (*Tree, error) {
	t := &Tree{root: root, zones: zones, raw: map[string]uint64{}, wraps: map[string]int{}, resetNS: map[string]int64{}}
	for _, z := range zones {
		if z.Range == 0 {
			return nil, fmt.Errorf("zone %s: range must be positive", z.Dir)
		}
		dir := filepath.Join(root, "class", "powercap", z.Dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create zone %s: %w", dir, err)
		}
		files := map[string]string{"name": z.Name, "max_energy_range_uj": strconv.FormatUint(z.Range, 10)}
		if z.MaxPower > 0 {
			files["constraint_0_name"] = "long_term"
			files["constraint_0_max_power_uw"] = strconv.FormatUint(z.MaxPower, 10)
		}
		for name, v := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o444); err != nil {
				return nil, fmt.Errorf("write zone file: %w", err)
			}
		}
	}
	t.t0 = clock.Mono()
	if err := t.write(t.t0); err != nil {
		return nil, err
	}
	return t, nil
}

// StartNS is the monotonic time the counters start from.
func (t *Tree) StartNS() int64 { return t.t0 }

// value is zone z's counter at monoNS. The caller holds t.mu.
func (t *Tree) value(z Zone, monoNS int64) uint64 {
	base, from := z.Start, t.t0
	if at, ok := t.resetNS[z.Dir]; ok {
		base, from = z.ResetTo, at
	} else if z.ResetAfter > 0 && time.Duration(monoNS-t.t0) >= z.ResetAfter {
		t.resetNS[z.Dir] = monoNS
		base, from = z.ResetTo, monoNS
	}
	e := base + uint64(z.Watts*float64(monoNS-from)/1e3) // W × ns = 1e-3 µJ
	return e % (z.Range + 1)
}

// write sets every counter to its value at monoNS.
func (t *Tree) write(monoNS int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, z := range t.zones {
		_, wasReset := t.resetNS[z.Dir]
		v := t.value(z, monoNS)
		_, isReset := t.resetNS[z.Dir]
		if prev, ok := t.raw[z.Dir]; ok && v < prev && wasReset == isReset {
			t.wraps[z.Dir]++
		}
		t.raw[z.Dir] = v
		dir := filepath.Join(t.root, "class", "powercap", z.Dir)
		tmp := filepath.Join(dir, ".energy_uj.tmp")
		if err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o444); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "energy_uj")); err != nil {
			return fmt.Errorf("replace %s: %w", filepath.Join(dir, "energy_uj"), err)
		}
	}
	if t.lastT != 0 {
		t.maxStale = max(t.maxStale, time.Duration(clock.Mono()-t.lastT))
	}
	t.lastT = monoNS
	return nil
}

// Run advances the counters every tick until Stop.
func (t *Tree) Run(tick time.Duration) {
	t.mu.Lock()
	if t.stop != nil {
		t.mu.Unlock()
		return
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	t.mu.Unlock()
	go func() {
		defer close(t.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tk.C:
				if err := t.write(clock.Mono()); err != nil {
					t.mu.Lock()
					t.err = err
					t.mu.Unlock()
					return
				}
			}
		}
	}()
}

// Stop halts the writer and returns the first write error. It is safe to call more than once.
func (t *Tree) Stop() error {
	t.mu.Lock()
	stop, done := t.stop, t.done
	t.mu.Unlock()
	if stop != nil {
		t.stopOnce.Do(func() { close(stop) })
		<-done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Wraps returns how many times zone dir's counter wrapped.
func (t *Tree) Wraps(dir string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wraps[dir]
}

// ResetNS returns when zone dir's counter was reset, if it was.
func (t *Tree) ResetNS(dir string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ns, ok := t.resetNS[dir]
	return ns, ok
}

// MaxStale is the longest time a counter file stood for an instant older than now: from one
// write's instant to the end of the next write (the tick, or longer when the writer was
// descheduled). Ground truth is uncertain by this much.
func (t *Tree) MaxStale() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxStale
}
