/* Thread-local error messages behind vc_status returns. */
#include <stdarg.h>
#include <stdio.h>

#include "vc.h"

static _Thread_local char last_error[1024];

const char *vc_status_name(vc_status s) {
    switch (s) {
    case VC_OK: return "ok";
    case VC_ERR_ARG: return "invalid argument";
    case VC_ERR_TYPE: return "wrong type";
    case VC_ERR_IO: return "i/o error";
    case VC_ERR_FORMAT: return "malformed file";
    case VC_ERR_MEMORY: return "out of memory";
    case VC_ERR_UNSAFE: return "unsafe content refused";
    case VC_ERR_UNSUPPORTED: return "unsupported";
    case VC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

vc_status vc_fail(vc_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *vc_last_error(void) { return last_error[0] ? last_error : "no error message"; }

void vc_clear_error(void) { last_error[0] = 0; }
