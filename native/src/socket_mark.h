// A TCP socket with SO_MARK set before it connects: see socket_mark.cc.
#pragma once

#include <napi.h>

void InitSocketMark(Napi::Env env, Napi::Object exports);
