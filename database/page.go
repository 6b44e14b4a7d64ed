package database

import "gorm.io/gorm"

// MaxPageSize is the most rows one page of a listing holds.
const MaxPageSize = 500

// PageLimit is the page size a listing uses when asked for limit rows: def
// when limit is not between 1 and MaxPageSize.
func PageLimit(limit, def int) int {
	if limit <= 0 || limit > MaxPageSize {
		return def
	}
	return limit
}

// FindPage counts the rows q matches, then reads one page of them: limit
// rows from offset, in order. read, when not nil, shapes the read alone
// (the columns to select or leave out), not the count. The total is what a
// pager needs to say how many pages there are.
func FindPage[T any](q *gorm.DB, order string, limit, offset int, read func(*gorm.DB) *gorm.DB) ([]T, int64, error) {
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	if read != nil {
		q = read(q)
	}
	var out []T
	if err := q.Order(order).Limit(limit).Offset(offset).Find(&out).Error; err != nil {
		return nil, 0, err
	}
	return out, total, nil
}
