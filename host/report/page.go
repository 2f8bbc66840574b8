package report

import (
	"bufio"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"

	"codeberg.org/go-fonts/liberation/liberationsansregular"
)

//go:embed templates/*.html templates/report.css
var assets embed.FS

// Page is what every page's layout reads: its title, the lemctl that wrote it and the inline styles.
type Page struct {
	Title     string
	Generated string
	Version   string
	CSS       template.CSS
}

func newBase(title string, o Options) Page {
	gen := ""
	if o.GeneratedUnixNS != 0 {
		gen = wall(o.GeneratedUnixNS)
	}
	css, err := assets.ReadFile("templates/report.css")
	if err != nil {
		panic(err) // embedded at build time
	}
	// The charts' one font (the font gonum/plot measures text with), inline so that the page
	// looks the same offline on every machine.
	font := "@font-face{font-family:\"Liberation Sans\";font-style:normal;font-weight:normal;src:url(data:font/ttf;base64," +
		base64.StdEncoding.EncodeToString(liberationsansregular.TTF) + ") format(\"truetype\");}\n"
	return Page{Title: title, Generated: gen, Version: o.LemctlVersion, CSS: template.CSS(font + string(css))}
}

// templates parses the page templates; it is called per page (cheap) so that no package state
// is set up at init.
func templates() (*template.Template, error) {
	return template.New("report").Funcs(template.FuncMap{
		"svg": func(s string) template.HTML { return template.HTML(s) }, // drawn by gonum/plot, not user input
	}).ParseFS(assets, "templates/*.html")
}

func execute(w io.Writer, name string, data any) error {
	t, err := templates()
	if err != nil {
		return fmt.Errorf("report templates: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := t.ExecuteTemplate(bw, name, data); err != nil {
		return fmt.Errorf("render the %s page: %w", name, err)
	}
	return bw.Flush()
}
