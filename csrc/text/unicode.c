/* UTF-8 decoding (maximal-subpart error handling) and class lookup by binary search. */
#include "text/unicode.h"

int vc_uc_class(uint32_t cp) {
    if (cp < 128) return vc_uc_ascii[cp];
    if (cp > 0x10FFFF) return VC_UC_OTHER;
    size_t lo = 0, hi = vc_uc_nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < vc_uc_ranges[mid].lo) hi = mid;
        else if (cp > vc_uc_ranges[mid].hi) lo = mid + 1;
        else return vc_uc_ranges[mid].cls;
    }
    return VC_UC_OTHER;
}

size_t vc_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    /* Length and the allowed range of the second byte, per Table 3-7 of the Unicode standard;
     * the narrowed ranges exclude overlong forms, surrogates and values above U+10FFFF. */
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
        v = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        v = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        v = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        *cp = VC_UTF8_INVALID; /* stray continuation byte, C0, C1, F5..FF */
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *cp = VC_UTF8_INVALID; /* the bytes so far form one maximal subpart */
            return i;
        }
        v = (v << 6) | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return len;
}

size_t vc_utf8_put(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}
