// A failed system call as JavaScript sees it, the way Node's own fs and net errors carry it: `code` is
// the errno name (EINVAL, EBUSY, ...), which hal/errors.ts maps to a HalError class.
#pragma once

#include <napi.h>
#include <string.h>

#include <string>

// strerrorname_np (glibc 2.32) has no name for a number outside its table; EIO stands in for it.
inline std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "EIO";
}

// Throws "call: strerror" with code, errno and syscall; returns undefined for the binding to return.
inline Napi::Value ThrowErrno(Napi::Env env, const char* call, int err) {
  Napi::Error error = Napi::Error::New(env, std::string(call) + ": " + strerror(err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, call));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}
