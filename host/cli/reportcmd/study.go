package reportcmd

import (
	"fmt"
	"strings"

	"github.com/lemctl/lemctl/host/cli/frontiercmd"
	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/study"
)

// frontierPlane is the plane of `lemctl frontier` the study page draws: energy per output token
// against throughput.
const frontierPlane = "energy_vs_throughput"

// StudyFrontier is `lemctl frontier STUDY_ID`'s decision without --slo, as the study page marks
// it: the Pareto set of energy per output token against throughput over the valid points, and
// the valid point of lowest mean energy per output token.
func StudyFrontier(s *study.Aggregate) *report.Frontier {
	rep := frontiercmd.Frontier(s, nil, false)
	fr := &report.Frontier{}
	for _, pl := range rep.Planes {
		if pl.Name == frontierPlane {
			fr.Points = pl.Pareto
		}
	}
	if r := rep.Recommended; r != nil {
		fr.Recommended = r.Point
		fr.Why = fmt.Sprintf("%s, the valid point of lowest mean energy per output token (%.4g J), as `lemctl frontier %s` recommends without --slo. "+
			"Frontier: the valid points no other valid point beats on both mean energy per output token and mean throughput.",
			r.Point, r.JPerOutputToken.Mean, s.StudyID)
	} else {
		fr.Why = fmt.Sprintf("none: no valid point has a mean energy per output token (`lemctl frontier %s`).", s.StudyID)
	}
	return fr
}

// StudyPage renders a study's page with `lemctl frontier`'s frontier and recommended point.
func StudyPage(s *study.Aggregate, o report.Options) ([]byte, error) {
	return render(func(b *strings.Builder) error {
		return report.WriteStudy(b, s, report.StudyOptions{Options: o, Frontier: StudyFrontier(s)})
	})
}
