package runcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/host/launch"
)

// progress shows per-worker progress on stderr: a line per change (text), one JSON object per
// message (json), or nothing (quiet).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	mode  string
	last  map[int]string
	lastT map[int]time.Time
}

func newProgress(w io.Writer, mode string) *progress {
	return &progress{w: w, mode: mode, last: map[int]string{}, lastT: map[int]time.Time{}}
}

func (p *progress) update(m launch.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "quiet":
		return
	case "json":
		b, _ := json.Marshal(m)
		fmt.Fprintln(p.w, string(b))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[rank %d] %-14s", m.Rank, m.Phase)
	if m.PromptsTotal > 0 {
		fmt.Fprintf(&b, " %d/%d prompts", m.PromptsDone, m.PromptsTotal)
	}
	if m.TokensPerS > 0 {
		fmt.Fprintf(&b, " %.1f tok/s", m.TokensPerS)
	}
	if w := m.Warmup; w != nil {
		b.WriteString(" " + warmupLine(*w))
	}
	if m.Detail != "" {
		fmt.Fprintf(&b, " (%s)", m.Detail)
	}
	line := b.String()
	// Phase changes always print; within the measured window, at most one line a second.
	if m.Phase == "measured" && strings.HasPrefix(p.last[m.Rank], fmt.Sprintf("[rank %d] measured", m.Rank)) && time.Since(p.lastT[m.Rank]) < time.Second {
		return
	}
	if line != p.last[m.Rank] {
		fmt.Fprintln(p.w, line)
		p.last[m.Rank], p.lastT[m.Rank] = line, time.Now()
	}
}

// failure shows a worker that failed, at once and in every mode but quiet: a line naming the
// rank, how it ended and its last phase (text), or {"type":"worker_failed",…} (json).
func (p *progress) failure(f launch.Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "quiet":
		return
	case "json":
		b, _ := json.Marshal(map[string]any{"type": "worker_failed", "rank": f.Rank, "reason": f.Reason, "exit": f.Exit,
			"phase": f.Phase, "call": f.Call, "log": f.LogPath})
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "[rank %d] FAILED: %s\n", f.Rank, strings.TrimPrefix(f.String(), fmt.Sprintf("rank %d failed: ", f.Rank)))
}

// warmupLine shows a cv-mode warm-up against its bounds, e.g.
// "warm-up batch 4/20, CV 0.12 (target 0.05), 9/60 s".
func warmupLine(w launch.WarmupProgress) string {
	cv := "–"
	if w.CV != nil {
		cv = fmt.Sprintf("%.2f", *w.CV)
	}
	line := fmt.Sprintf("warm-up batch %d/%d, CV %s (target %g), %.0f", w.Batch, w.MaxBatches, cv, w.TargetCV, w.ElapsedS)
	if w.MaxS > 0 {
		return line + fmt.Sprintf("/%g s", w.MaxS)
	}
	return line + " s"
}
