/* torch.topk(x, k, largest=True, sorted=True) on CPU, including its order for equal values.
 *
 * ATen's CPU top-k (TopKImpl.h, topk_impl_loop) fills (value, index) pairs and runs the C++
 * standard library with comparator "x ranks above y" (NaN above numbers, no index tie-break):
 * std::partial_sort when k * 64 <= n, else std::nth_element(k - 1) then std::sort of the first
 * k - 1. Which of several equal values it returns, and in what order, is whatever libstdc++'s
 * algorithms produce, so this file re-implements their behaviour (introselect / introsort with
 * median-of-three pivots, heap select, insertion sort with a 16-element threshold) to get the
 * same permutation: checked against torch.topk on thousands of tie-heavy inputs.
 *
 * ref: pytorch aten/src/ATen/native/TopKImpl.h; the algorithms of libstdc++ <bits/stl_algo.h>
 * and <bits/stl_heap.h>. */
#include "generate/gen_internal.h"

typedef gen_pair P;

static inline int above(const P *a, const P *b) {
    return (isnan(a->v) && !isnan(b->v)) || a->v > b->v;
}

static inline void swap(P *a, P *b) {
    P t = *a;
    *a = *b;
    *b = t;
}

static int lg2(long n) {
    int r = 0;
    while (n >>= 1) r++;
    return r;
}

static void linear_insert(P *last) { /* unguarded: something before `last` ranks at least as high */
    P v = *last, *next = last - 1;
    while (above(&v, next)) {
        *last = *next;
        last = next--;
    }
    *last = v;
}

static void insertion_sort(P *f, P *l) {
    if (f == l) return;
    for (P *i = f + 1; i < l; i++) {
        if (above(i, f)) {
            P v = *i;
            for (P *j = i; j > f; j--) *j = *(j - 1);
            *f = v;
        } else {
            linear_insert(i);
        }
    }
}

static void median_to_first(P *r, P *a, P *b, P *c) {
    if (above(a, b)) {
        if (above(b, c)) swap(r, b);
        else if (above(a, c)) swap(r, c);
        else swap(r, a);
    } else if (above(a, c)) swap(r, a);
    else if (above(b, c)) swap(r, c);
    else swap(r, b);
}

static P *partition_pivot(P *f, P *l) {
    median_to_first(f, f + 1, f + (l - f) / 2, l - 1);
    P *pivot = f, *lo = f + 1, *hi = l;
    for (;;) {
        while (above(lo, pivot)) lo++;
        hi--;
        while (above(pivot, hi)) hi--;
        if (!(lo < hi)) return lo;
        swap(lo, hi);
        lo++;
    }
}

static void push_heap(P *f, long hole, long top, P v) {
    long parent = (hole - 1) / 2;
    while (hole > top && above(f + parent, &v)) {
        f[hole] = f[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    f[hole] = v;
}

static void adjust_heap(P *f, long hole, long len, P v) {
    long top = hole, child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (above(f + child, f + child - 1)) child--;
        f[hole] = f[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        f[hole] = f[child - 1];
        hole = child - 1;
    }
    push_heap(f, hole, top, v);
}

static void pop_heap(P *f, P *l, P *result) {
    P v = *result;
    *result = *f;
    adjust_heap(f, 0, l - f, v);
}

static void heap_select(P *f, P *m, P *l) {
    long len = m - f;
    if (len >= 2)
        for (long parent = (len - 2) / 2;; parent--) {
            adjust_heap(f, parent, len, f[parent]);
            if (parent == 0) break;
        }
    for (P *i = m; i < l; i++)
        if (above(i, f)) pop_heap(f, m, i);
}

static void sort_heap(P *f, P *l) {
    while (l - f > 1) {
        l--;
        pop_heap(f, l, l);
    }
}

static void nth_element(P *f, P *nth, P *l) {
    if (f == l || nth == l) return;
    int depth = lg2(l - f) * 2;
    while (l - f > 3) {
        if (depth-- == 0) {
            heap_select(f, nth + 1, l);
            swap(f, nth);
            return;
        }
        P *cut = partition_pivot(f, l);
        if (cut <= nth) f = cut;
        else l = cut;
    }
    insertion_sort(f, l);
}

static void introsort_loop(P *f, P *l, int depth) {
    while (l - f > 16) {
        if (depth-- == 0) {
            heap_select(f, l, l);
            sort_heap(f, l);
            return;
        }
        P *cut = partition_pivot(f, l);
        introsort_loop(cut, l, depth);
        l = cut;
    }
}

static void std_sort(P *f, P *l) {
    if (f == l) return;
    introsort_loop(f, l, lg2(l - f) * 2);
    if (l - f > 16) {
        insertion_sort(f, f + 16);
        for (P *i = f + 16; i < l; i++) linear_insert(i);
    } else {
        insertion_sort(f, l);
    }
}

void gen_topk(const float *x, int n, int k, int32_t *idx, gen_pair *q) {
    for (int i = 0; i < n; i++) q[i].v = x[i], q[i].i = i;
    if ((long)k * 64 <= n) {
        heap_select(q, q + k, q + n);
        sort_heap(q, q + k);
    } else {
        nth_element(q, q + k - 1, q + n);
        std_sort(q, q + k - 1);
    }
    for (int j = 0; j < k; j++) idx[j] = q[j].i;
}
