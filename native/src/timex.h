// The kernel's NTP state through adjtimex(2), read only: see timex.cc.
#pragma once

#include <napi.h>

void InitTimex(Napi::Env env, Napi::Object exports);
