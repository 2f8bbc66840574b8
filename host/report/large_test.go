package report

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// maxPageBytes is the most a report of the 1,000-rank aggregate may weigh.
const maxPageBytes = 5 << 20

// TestThousandRanksReport renders the report of the aggregation benchmark's 1,000-rank
// aggregate: at most 5 MB, the timeline downsampled (the page says so, with the counts) and
// every section and chart present. Its time is measured by BenchmarkThousandRanksReport and
// reported in docs/performance.md, not asserted here.
func TestThousandRanksReport(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 1,000-rank fixture takes a while to aggregate")
	}
	e := experimentOf(t, "bench", thousandRanks())
	var buf bytes.Buffer
	start := time.Now()
	if err := WriteExperiment(&buf, e, Options{LemctlVersion: "test"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered %d bytes in %s", buf.Len(), time.Since(start))
	if buf.Len() > maxPageBytes {
		t.Errorf("page is %d bytes, more than %d", buf.Len(), maxPageBytes)
	}
	checkPage(t, buf.Bytes(), experimentSections, 5)
	// 1,000 GPU timelines and 125 hosts × (package, dram): 201 samples each over 20 s, one power
	// point per interval.
	m := regexp.MustCompile(`The timeline is downsampled: (\d+) of (\d+) points drawn`).FindSubmatch(buf.Bytes())
	if m == nil {
		t.Fatal("page does not say the timeline is downsampled")
	}
	drawn, total := atoi(t, m[1]), atoi(t, m[2])
	if want := (1000 + 250) * 200; total != want {
		t.Errorf("timeline samples %d, want %d", total, want)
	}
	// Three kinds (gpu, package, dram) of more than maxLines domains: each an envelope of at most
	// MaxTimelinePoints/2 buckets (its lowest, mean and highest per bucket).
	if drawn <= 0 || drawn > 3*3*MaxTimelinePoints/2 {
		t.Errorf("drew %d timeline points, want 1 … %d", drawn, 3*3*MaxTimelinePoints/2)
	}
	if !bytes.Contains(buf.Bytes(), []byte("1000 domains of kind gpu: drawn as their mean with the band from the lowest to the highest")) {
		t.Error("the envelope of the GPUs is not said")
	}
	if !bytes.Contains(buf.Bytes(), []byte("1000 rank(s)")) {
		t.Error("per-rank table does not list 1,000 ranks")
	}
}

func atoi(t *testing.T, b []byte) int {
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkThousandRanksReport renders the 1,000-rank aggregate's report (aggregation and
// decoding excluded). Goal: ≤ 5 s; the figure is in docs/performance.md.
func BenchmarkThousandRanksReport(b *testing.B) {
	e := experimentOf(b, "bench", thousandRanks())
	b.ResetTimer()
	size := 0
	for b.Loop() {
		var buf bytes.Buffer
		if err := WriteExperiment(&buf, e, Options{}); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size)/1e6, "page-MB")
}
