package codegen

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/vizops/viz-operator/internal/chartdata"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ColumnType is a column's inferred kind, as LIDA's summarizer reports it.
type ColumnType string

const (
	ColumnNumber   ColumnType = "number"
	ColumnDate     ColumnType = "date"
	ColumnCategory ColumnType = "category"
	ColumnText     ColumnType = "text"
)

// Bounds on a summary: it goes into model prompts and status, so its size must not
// follow the data's.
const (
	// DefaultMaxRows is how many rows SummarizeCSV inspects when maxRows <= 0.
	DefaultMaxRows = 10000
	// MaxColumns is the widest CSV summarized; wider data is an error, since no
	// chart uses hundreds of columns and the prompt would not hold them.
	MaxColumns  = 200
	maxSamples  = 3
	maxSample   = 40 // bytes per sample value
	maxColName  = 64 // bytes of a column name in the prompt
	maxPromptCo = 50 // columns listed in Prompt(); the rest are counted
	// categoryUnique is the most distinct values a column may have and still be a
	// category regardless of its size (LIDA also uses a unique-ratio test).
	categoryUnique = 20
)

// Column summarizes one CSV column.
type Column struct {
	// Name is the column's name as pandas.read_csv gives it (an empty header is
	// "Unnamed: i", a repeated one gets ".1"), so generated code can use df[Name].
	Name string
	Type ColumnType
	// Nulls counts empty and NA-like cells (pandas' default na_values).
	Nulls int
	// Unique counts distinct non-null values among the inspected rows.
	Unique int
	// Samples are up to three distinct non-null values, each bounded in length.
	Samples []string
	// Min, Max and Mean are set for number columns.
	Min, Max, Mean float64
	// First and Last are the earliest and latest dates of a date column.
	First, Last string
}

// Summary describes a CSV for templates and model prompts.
type Summary struct {
	// Rows is the number of data rows (the header excluded).
	Rows int
	// Inspected is how many rows the column statistics are based on (≤ maxRows).
	Inspected int
	Columns   []Column
}

// naValues are the cells pandas.read_csv reads as NaN by default.
var naValues = map[string]bool{
	"": true, "#N/A": true, "#N/A N/A": true, "#NA": true, "-1.#IND": true, "-1.#QNAN": true,
	"-NaN": true, "-nan": true, "1.#IND": true, "1.#QNAN": true, "<NA>": true, "N/A": true,
	"NA": true, "NULL": true, "NaN": true, "None": true, "n/a": true, "nan": true, "null": true,
}

// dateLayouts are the date forms recognized; pure years ("2024") stay numbers.
var dateLayouts = []string{
	"2006-01-02", "2006-01-02 15:04:05", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02 15:04",
	"2006/01/02", "01/02/2006", "1/2/2006", "02.01.2006", "2006-01", "Jan 2006", "January 2006",
	"Jan 2, 2006", "January 2, 2006", "2 Jan 2006", "02 Jan 2006", "2 January 2006",
}

// SummarizeCSV reads csv (a header row, then data rows) and summarizes each column:
// inferred type, null count, distinct values, samples and ranges. Statistics come
// from the first maxRows rows (DefaultMaxRows when maxRows <= 0); Rows counts all.
// Malformed input is an error naming the line.
func SummarizeCSV(data []byte, maxRows int) (Summary, error) {
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM is not part of the first name
	if len(bytes.TrimSpace(data)) == 0 {
		return Summary{}, errors.New("the data is empty: give a CSV with a header row and at least one data row")
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte("\n"))
		return Summary{}, fmt.Errorf("the data is not UTF-8 text (line %d): save the CSV as UTF-8", line)
	}

	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if err != nil {
		return Summary{}, csvError(err)
	}
	if len(header) > MaxColumns {
		return Summary{}, fmt.Errorf("the data has %d columns; at most %d are supported: drop the columns the chart does not need", len(header), MaxColumns)
	}
	cols := make([]*columnStats, len(header))
	for i, name := range pandasNames(header) {
		cols[i] = &columnStats{name: name, seen: map[string]bool{}}
	}

	s := Summary{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Summary{}, csvError(err)
		}
		s.Rows++
		if s.Rows > maxRows {
			continue // still read to the end: a malformed line later is still an error
		}
		for i, v := range rec {
			cols[i].add(v)
		}
	}
	if s.Rows == 0 {
		return Summary{}, errors.New("the data has a header row but no data rows: add rows below the header")
	}
	s.Inspected = min(s.Rows, maxRows)
	for _, c := range cols {
		s.Columns = append(s.Columns, c.column())
	}
	return s, nil
}

// csvError turns encoding/csv's error into one that says where and what.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(pe.Err, csv.ErrFieldCount):
			return fmt.Errorf("the CSV is malformed: line %d has a different number of fields than the header; quote values that contain commas", pe.Line)
		case errors.Is(pe.Err, csv.ErrQuote) && pe.StartLine != pe.Line:
			return fmt.Errorf("the CSV is malformed: the quoted value that starts on line %d is not closed (reading stopped at line %d, column %d); close the quote or double a quote inside it (\"\")", pe.StartLine, pe.Line, pe.Column)
		case errors.Is(pe.Err, csv.ErrQuote), errors.Is(pe.Err, csv.ErrBareQuote):
			return fmt.Errorf("the CSV is malformed: line %d, column %d: %w; double a quote inside a quoted value (\"\")", pe.Line, pe.Column, pe.Err)
		}
		return fmt.Errorf("the CSV is malformed: line %d: %w", pe.Line, pe.Err)
	}
	return fmt.Errorf("the CSV could not be read: %w", err)
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// pandasNames renames headers as pandas.read_csv does, so the summary's names are
// the DataFrame's: an empty name becomes "Unnamed: i", a repeat gets ".1", ".2".
func pandasNames(header []string) []string {
	out := make([]string, len(header))
	used := map[string]bool{}
	repeats := map[string]int{}
	for i, h := range header {
		if strings.TrimSpace(h) == "" {
			h = fmt.Sprintf("Unnamed: %d", i)
		}
		name := h
		for used[name] {
			repeats[h]++
			name = fmt.Sprintf("%s.%d", h, repeats[h])
		}
		used[name] = true
		out[i] = name
	}
	return out
}

type columnStats struct {
	name           string
	nulls, nonNull int
	numbers, dates int
	seen           map[string]bool
	samples        []string
	min, max, sum  float64
	first, last    time.Time
	firstS, lastS  string
}

func (c *columnStats) add(v string) {
	v = strings.TrimSpace(v)
	if naValues[v] {
		c.nulls++
		return
	}
	c.nonNull++
	c.seen[v] = true // bounded by maxRows: only inspected rows get here
	if len(c.samples) < maxSamples && !contains(c.samples, chartdata.Truncate(v, maxSample)) {
		c.samples = append(c.samples, chartdata.Truncate(v, maxSample))
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
		if c.numbers == 0 || f < c.min {
			c.min = f
		}
		if c.numbers == 0 || f > c.max {
			c.max = f
		}
		c.sum += f
		c.numbers++
		return
	}
	if t, ok := parseDate(v); ok {
		if c.dates == 0 || t.Before(c.first) {
			c.first, c.firstS = t, v
		}
		if c.dates == 0 || t.After(c.last) {
			c.last, c.lastS = t, v
		}
		c.dates++
	}
}

func (c *columnStats) column() Column {
	col := Column{Name: c.name, Nulls: c.nulls, Unique: len(c.seen), Samples: c.samples}
	switch {
	case c.nonNull == 0:
		col.Type = ColumnText // all empty: nothing to plot
	case c.numbers == c.nonNull:
		col.Type = ColumnNumber
		col.Min, col.Max, col.Mean = c.min, c.max, c.sum/float64(c.numbers)
	case c.dates == c.nonNull:
		col.Type = ColumnDate
		col.First, col.Last = chartdata.Truncate(c.firstS, maxSample), chartdata.Truncate(c.lastS, maxSample)
	case len(c.seen) <= categoryUnique || float64(len(c.seen)) <= 0.5*float64(c.nonNull):
		col.Type = ColumnCategory
	default:
		col.Type = ColumnText
	}
	return col
}

func parseDate(v string) (time.Time, bool) {
	if len(v) < 6 || len(v) > 40 {
		return time.Time{}, false
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ColumnsOf returns the names of the columns of type t, in CSV order.
func (s Summary) ColumnsOf(t ColumnType) []string {
	var out []string
	for _, c := range s.Columns {
		if c.Type == t {
			out = append(out, c.Name)
		}
	}
	return out
}

// Prompt describes the data for a model: one line per column, bounded in size. It
// names the DataFrame the sandbox preloads.
func (s Summary) Prompt() string {
	var b strings.Builder
	fmt.Fprintf(&b, "The data is %s, preloaded as the pandas DataFrame `df`: %d rows, %d columns", DataFile, s.Rows, len(s.Columns))
	if s.Inspected < s.Rows {
		fmt.Fprintf(&b, " (statistics from the first %d rows)", s.Inspected)
	}
	b.WriteString(".\nColumns:\n")
	for i, c := range s.Columns {
		if i == maxPromptCo {
			fmt.Fprintf(&b, "- … and %d more columns\n", len(s.Columns)-maxPromptCo)
			break
		}
		fmt.Fprintf(&b, "- %s: %s", strconv.Quote(chartdata.Truncate(c.Name, maxColName)), c.Type)
		switch c.Type {
		case ColumnNumber:
			fmt.Fprintf(&b, ", min %s, max %s, mean %s", fmtNum(c.Min), fmtNum(c.Max), fmtNum(c.Mean))
		case ColumnDate:
			fmt.Fprintf(&b, ", from %s to %s", strconv.Quote(c.First), strconv.Quote(c.Last))
		case ColumnCategory, ColumnText:
			fmt.Fprintf(&b, ", %d distinct", c.Unique)
		}
		if c.Nulls > 0 {
			fmt.Fprintf(&b, ", %d nulls", c.Nulls)
		}
		if len(c.Samples) > 0 {
			q := make([]string, len(c.Samples))
			for j, v := range c.Samples {
				q[j] = strconv.Quote(v)
			}
			fmt.Fprintf(&b, ", samples %s", strings.Join(q, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fmtNum(f float64) string {
	return strconv.FormatFloat(f, 'g', 6, 64)
}
