package web

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// deviceRows parses an HTML document (served, or as Chromium rendered it)
// and returns the rows of table#devices that name a device, each as
// column header -> cell text.
func deviceRows(t testing.TB, doc string) []map[string]string {
	t.Helper()
	return tableRows(t, doc, "devices")
}

// tableRows returns the rows of table#id that name a device.
func tableRows(t testing.TB, doc, id string) []map[string]string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	table := find(root, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "table" && attr(n, "id") == id
	})
	if table == nil {
		t.Fatalf("no table#%s in:\n%s", id, doc)
	}
	var headers []string
	for _, th := range all(table, "th") {
		headers = append(headers, text(th))
	}
	var rows []map[string]string
	for _, tr := range all(table, "tr") {
		if attr(tr, "data-device") == "" {
			continue
		}
		tds := all(tr, "td")
		if len(tds) != len(headers) {
			t.Fatalf("row %s: %d cells, %d headers", attr(tr, "data-device"), len(tds), len(headers))
		}
		row := map[string]string{}
		for i, td := range tds {
			row[headers[i]] = text(td)
		}
		rows = append(rows, row)
	}
	return rows
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func all(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.Data == tag {
				out = append(out, c)
			}
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}
