package web

import (
	"strconv"
	"time"
)

// Geometry of the km-per-batch chart, in SVG user units.
const (
	chartW    = 720
	chartH    = 200
	chartLeft = 56 // room for the y labels
	chartBase = 180
	chartTop  = 12
)

// chart is the inline SVG chart of eligible km per batch, laid out here
// so that the template only places numbers.
type chart struct {
	W, H       int
	Left, Base int
	Right      int
	Bars       []bar
	MaxLabel   string // km at the top of the axis
	From, To   string // the first and last batch, as UTC times
	TotalLabel string // km over the chart
	Empty      bool
}

// bar is one batch's bar.
type bar struct {
	X, Y, W, H float64
	Batch      uint64
	Km         string
	Drawn      bool
}

func newChart(bms []BatchMeters) chart {
	c := chart{W: chartW, H: chartH, Left: chartLeft, Base: chartBase, Right: chartW - 4}
	var top, total uint64
	for _, b := range bms {
		top = max(top, b.Meters)
		total += b.Meters
	}
	c.Empty = top == 0
	c.TotalLabel = kmString(total)
	if len(bms) == 0 {
		return c
	}
	c.From = batchLabel(bms[0].Batch)
	c.To = batchLabel(bms[len(bms)-1].Batch)
	if top == 0 {
		top = 1
	}
	c.MaxLabel = kmString(top)
	slot := float64(c.Right-c.Left) / float64(len(bms))
	w := max(slot*0.8, 1)
	for i, b := range bms {
		h := float64(b.Meters) / float64(top) * float64(chartBase-chartTop)
		if b.Meters > 0 && h < 1 {
			h = 1
		}
		c.Bars = append(c.Bars, bar{X: round2(float64(c.Left) + float64(i)*slot), Y: round2(float64(chartBase) - h), W: round2(w), H: round2(h),
			Batch: b.Batch, Km: kmString(b.Meters), Drawn: b.Drawn})
	}
	return c
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func kmString(m uint64) string { return strconv.FormatFloat(float64(m)/1000, 'f', 3, 64) + " km" }

func batchLabel(b uint64) string { return time.Unix(int64(b)*600, 0).UTC().Format("2006-01-02 15:04Z") }
