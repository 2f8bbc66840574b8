package energy

import (
	"fmt"
	"strings"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// CodeThrottledWindow is the window-level throttling finding: thermal or power-cap clock events
// held for a share of the measured window (docs/methodology.md, "Throttling").
const CodeThrottledWindow = "throttled_window"

// ThrottleShare returns the share of the window w during which the clock-event reasons of
// samples included a thermal or power-cap reason (sdk.ClockEventThrottling), the reasons seen,
// and whether any sample read the reasons at all. Only samples with ReasonsRead count. The rule
// is sample-and-hold: the reasons read at a sample hold until the next sample that read them;
// the stretch of the window before the first such sample takes that first sample's reasons, and
// the last one's hold to the window's end.
func ThrottleShare(samples []sdk.Sample, w Interval) (share float64, reasons uint64, ok bool) {
	var read []sdk.Sample
	for _, s := range samples {
		if s.ReasonsRead {
			read = append(read, s)
		}
	}
	if len(read) == 0 || w.EndMonoNS <= w.StartMonoNS {
		return 0, 0, false
	}
	var throttledNS int64
	for i, s := range read {
		from, to := s.MonoNS, w.EndMonoNS
		if i == 0 {
			from = w.StartMonoNS
		}
		if i+1 < len(read) {
			to = read[i+1].MonoNS
		}
		from, to = max(from, w.StartMonoNS), min(to, w.EndMonoNS)
		bits := s.ClockEventReasons & sdk.ClockEventThrottling
		if to <= from || bits == 0 {
			continue
		}
		throttledNS += to - from
		reasons |= bits
	}
	return float64(throttledNS) / float64(w.EndMonoNS-w.StartMonoNS), reasons, true
}

// throttled returns the throttled_window finding of one domain, or nil when its clocks were not
// held down in the window (or its meter does not read clock-event reasons). The finding is a
// warning up to limit (validity.max_throttle_share) and an error above it.
func throttled(id string, samples []sdk.Sample, w Interval, limit float64) *results.Finding {
	share, reasons, ok := ThrottleShare(samples, w)
	if !ok || share <= 0 {
		return nil
	}
	sev, verdict := results.SeverityWarning, "at most"
	if share > limit {
		sev, verdict = results.SeverityError, "more than"
	}
	return &results.Finding{Code: CodeThrottledWindow, Severity: sev, Domain: id,
		Message: fmt.Sprintf("%s clocks were held down by thermal or power limits (%s) for %.1f %% of the measured window, %s the %.1f %% allowed (validity.max_throttle_share)",
			id, strings.Join(sdk.ClockEventNames(reasons), ", "), share*100, verdict, limit*100),
		Advice: "improve cooling, raise the power limit or lower the load; throttled runs are not comparable with unthrottled ones"}
}
