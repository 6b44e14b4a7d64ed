package web

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// gridPageSize is how many rows a grid shows on one page.
const gridPageSize = 25

// Paging is one page of a grid: the page a request asks for (?page=, from
// 1) and, once the listing is read, how many rows match and over how many
// pages. Page data embed it; the "pager" partial reads Page and Pages.
type Paging struct {
	Page  int
	Pages int
	Total int64
}

// pagingOf reads the page a request asks for.
func pagingOf(c *fiber.Ctx) Paging { return Paging{Page: pageNumber(c)} }

// Limit is how many rows the page holds.
func (p Paging) Limit() int { return gridPageSize }

// Offset is the row the page starts at.
func (p Paging) Offset() int { return (p.Page - 1) * gridPageSize }

// counted records how many rows match.
func (p *Paging) counted(total int64) {
	p.Total, p.Pages = total, pages(total, gridPageSize)
}

// pageNumber reads ?page=, from 1.
func pageNumber(c *fiber.Ctx) int {
	n, err := strconv.Atoi(c.Query("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func pages(total int64, size int) int {
	return int((total + int64(size) - 1) / int64(size))
}
