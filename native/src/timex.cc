// adjtimex(2) with modes 0: the kernel's NTP state, read without changing it (any user may; only a
// non-zero modes needs CAP_SYS_TIME). Node has no binding for it. The fields are the kernel's as
// __do_adjtimex (kernel/time/ntp.c) fills them: status (STA_*), maxerror and esterror in
// microseconds, and the return value, the clock state, TIME_ERROR (5) when is_error_status() holds
// (STA_UNSYNC or STA_CLOCKERR, or a PPS discipline without its signal).
#include "timex.h"

#include "errno_name.h"

#include <errno.h>
#include <string.h>
#include <sys/timex.h>

namespace {

Napi::Value AdjtimexRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct timex tx;
  memset(&tx, 0, sizeof tx);
  int state = adjtimex(&tx);
  if (state < 0) return ThrowErrno(env, "adjtimex", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("state", Napi::Number::New(env, state));
  out.Set("status", Napi::Number::New(env, tx.status));
  out.Set("maxErrorUs", Napi::Number::New(env, static_cast<double>(tx.maxerror)));
  out.Set("estErrorUs", Napi::Number::New(env, static_cast<double>(tx.esterror)));
  return out;
}

}  // namespace

void InitTimex(Napi::Env env, Napi::Object exports) {
  exports.Set("adjtimexRead", Napi::Function::New(env, AdjtimexRead));
}
