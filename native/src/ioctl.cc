// The ioctls Node lacks, on file descriptors JavaScript opened: the watchdog (linux/watchdog.h), the
// GPIO character device's v2 uAPI (linux/gpio.h) and a UART's RS-485 mode (linux/serial.h). Every call is synchronous: these ioctls only touch
// driver state and return at once. Edge events are the one thing that waits, so a line's fd is watched
// with a uv_poll on the main loop and each readable event hands every queued event to JavaScript.
// A failed ioctl throws an Error whose `code` is the errno name (EINVAL, EBUSY, ...), as Node's fs does.
// The same addon carries the other calls Node lacks: adjtimex(2) (timex.cc) and a TCP socket with
// SO_MARK set before it connects (socket_mark.cc).
#include <napi.h>
#include <uv.h>

#include "errno_name.h"
#include "socket_mark.h"
#include "timex.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <linux/serial.h>
#include <linux/watchdog.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace {

bool Args(const Napi::CallbackInfo& info, size_t count, const char* usage) {
  if (info.Length() < count) {
    Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

int Fd(const Napi::CallbackInfo& info) { return info[0].As<Napi::Number>().Int32Value(); }

// ---- watchdog ----

Napi::Value WdtGetInt(const Napi::CallbackInfo& info, unsigned long request, const char* call) {
  if (!Args(info, 1, "(fd)")) return info.Env().Undefined();
  int value = 0;
  if (ioctl(Fd(info), request, &value) < 0) return ThrowErrno(info.Env(), call, errno);
  return Napi::Number::New(info.Env(), value);
}

Napi::Value WdtGetTimeout(const Napi::CallbackInfo& info) { return WdtGetInt(info, WDIOC_GETTIMEOUT, "WDIOC_GETTIMEOUT"); }
Napi::Value WdtGetTimeLeft(const Napi::CallbackInfo& info) { return WdtGetInt(info, WDIOC_GETTIMELEFT, "WDIOC_GETTIMELEFT"); }
Napi::Value WdtGetBootStatus(const Napi::CallbackInfo& info) { return WdtGetInt(info, WDIOC_GETBOOTSTATUS, "WDIOC_GETBOOTSTATUS"); }

// The kernel writes back the timeout it applied, which a driver may round (i6300esb does not, others
// clamp to their hardware's granularity).
Napi::Value WdtSetTimeout(const Napi::CallbackInfo& info) {
  if (!Args(info, 2, "(fd, seconds)")) return info.Env().Undefined();
  int value = info[1].As<Napi::Number>().Int32Value();
  if (ioctl(Fd(info), WDIOC_SETTIMEOUT, &value) < 0) return ThrowErrno(info.Env(), "WDIOC_SETTIMEOUT", errno);
  return Napi::Number::New(info.Env(), value);
}

Napi::Value WdtGetSupport(const Napi::CallbackInfo& info) {
  if (!Args(info, 1, "(fd)")) return info.Env().Undefined();
  struct watchdog_info wi;
  memset(&wi, 0, sizeof wi);
  if (ioctl(Fd(info), WDIOC_GETSUPPORT, &wi) < 0) return ThrowErrno(info.Env(), "WDIOC_GETSUPPORT", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("identity", Napi::String::New(info.Env(), std::string(reinterpret_cast<const char*>(wi.identity), strnlen(reinterpret_cast<const char*>(wi.identity), sizeof wi.identity))));
  o.Set("options", Napi::Number::New(info.Env(), wi.options));
  o.Set("firmwareVersion", Napi::Number::New(info.Env(), wi.firmware_version));
  return o;
}

// ---- GPIO v2 ----

std::string Fixed(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

Napi::Value GpioChipInfo(const Napi::CallbackInfo& info) {
  if (!Args(info, 1, "(chipFd)")) return info.Env().Undefined();
  struct gpiochip_info ci;
  memset(&ci, 0, sizeof ci);
  if (ioctl(Fd(info), GPIO_GET_CHIPINFO_IOCTL, &ci) < 0) return ThrowErrno(info.Env(), "GPIO_GET_CHIPINFO_IOCTL", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("name", Fixed(ci.name, sizeof ci.name));
  o.Set("label", Fixed(ci.label, sizeof ci.label));
  o.Set("lines", Napi::Number::New(info.Env(), ci.lines));
  return o;
}

Napi::Value GpioLineInfo(const Napi::CallbackInfo& info) {
  if (!Args(info, 2, "(chipFd, offset)")) return info.Env().Undefined();
  struct gpio_v2_line_info li;
  memset(&li, 0, sizeof li);
  li.offset = info[1].As<Napi::Number>().Uint32Value();
  if (ioctl(Fd(info), GPIO_V2_GET_LINEINFO_IOCTL, &li) < 0) return ThrowErrno(info.Env(), "GPIO_V2_GET_LINEINFO_IOCTL", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("name", Fixed(li.name, sizeof li.name));
  o.Set("consumer", Fixed(li.consumer, sizeof li.consumer));
  o.Set("offset", Napi::Number::New(info.Env(), li.offset));
  // The flags fit in 53 bits (GPIO_V2_LINE_FLAG_* end at bit 12).
  o.Set("flags", Napi::Number::New(info.Env(), static_cast<double>(li.flags)));
  return o;
}

// requestLine(chipFd, offset, consumer, flags, outputValue | null, debounceUs) -> line fd. With
// outputValue null the request carries no output-values attribute; a request without direction flags
// leaves the line's direction and level as they are (linereq_create in gpiolib-cdev.c).
Napi::Value GpioRequestLine(const Napi::CallbackInfo& info) {
  if (!Args(info, 6, "(chipFd, offset, consumer, flags, outputValue, debounceUs)")) return info.Env().Undefined();
  struct gpio_v2_line_request req;
  memset(&req, 0, sizeof req);
  req.offsets[0] = info[1].As<Napi::Number>().Uint32Value();
  req.num_lines = 1;
  std::string consumer = info[2].As<Napi::String>().Utf8Value();
  strncpy(req.consumer, consumer.c_str(), sizeof req.consumer - 1);
  req.config.flags = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
  if (!info[4].IsNull() && !info[4].IsUndefined()) {
    req.config.num_attrs = 1;
    req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    req.config.attrs[0].attr.values = info[4].ToBoolean().Value() ? 1 : 0;
    req.config.attrs[0].mask = 1;
  }
  uint32_t debounce_us = info[5].As<Napi::Number>().Uint32Value();
  if (debounce_us > 0) {
    auto& attr = req.config.attrs[req.config.num_attrs++];
    attr.attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
    attr.attr.debounce_period_us = debounce_us;
    attr.mask = 1;
  }
  if (ioctl(Fd(info), GPIO_V2_GET_LINE_IOCTL, &req) < 0) return ThrowErrno(info.Env(), "GPIO_V2_GET_LINE_IOCTL", errno);
  // Edge events are read by the uv_poll below, which must never block the main loop.
  fcntl(req.fd, F_SETFL, fcntl(req.fd, F_GETFL) | O_NONBLOCK);
  return Napi::Number::New(info.Env(), req.fd);
}

// setConfig(lineFd, flags, outputValue | null): changes direction/edges of a requested line in place.
Napi::Value GpioSetConfig(const Napi::CallbackInfo& info) {
  if (!Args(info, 3, "(lineFd, flags, outputValue)")) return info.Env().Undefined();
  struct gpio_v2_line_config lc;
  memset(&lc, 0, sizeof lc);
  lc.flags = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  if (!info[2].IsNull() && !info[2].IsUndefined()) {
    lc.num_attrs = 1;
    lc.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    lc.attrs[0].attr.values = info[2].ToBoolean().Value() ? 1 : 0;
    lc.attrs[0].mask = 1;
  }
  if (ioctl(Fd(info), GPIO_V2_LINE_SET_CONFIG_IOCTL, &lc) < 0) return ThrowErrno(info.Env(), "GPIO_V2_LINE_SET_CONFIG_IOCTL", errno);
  return info.Env().Undefined();
}

Napi::Value GpioGetValue(const Napi::CallbackInfo& info) {
  if (!Args(info, 1, "(lineFd)")) return info.Env().Undefined();
  struct gpio_v2_line_values lv;
  memset(&lv, 0, sizeof lv);
  lv.mask = 1;
  if (ioctl(Fd(info), GPIO_V2_LINE_GET_VALUES_IOCTL, &lv) < 0) return ThrowErrno(info.Env(), "GPIO_V2_LINE_GET_VALUES_IOCTL", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(lv.bits & 1));
}

Napi::Value GpioSetValue(const Napi::CallbackInfo& info) {
  if (!Args(info, 2, "(lineFd, value)")) return info.Env().Undefined();
  struct gpio_v2_line_values lv;
  memset(&lv, 0, sizeof lv);
  lv.mask = 1;
  lv.bits = info[1].ToBoolean().Value() ? 1 : 0;
  if (ioctl(Fd(info), GPIO_V2_LINE_SET_VALUES_IOCTL, &lv) < 0) return ThrowErrno(info.Env(), "GPIO_V2_LINE_SET_VALUES_IOCTL", errno);
  return info.Env().Undefined();
}

// ---- RS-485 (struct serial_rs485, TIOCSRS485 / TIOCGRS485) ----

Napi::Value Rs485Object(Napi::Env env, const struct serial_rs485& rs) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", Napi::Number::New(env, rs.flags));
  o.Set("delayRtsBeforeSend", Napi::Number::New(env, rs.delay_rts_before_send));
  o.Set("delayRtsAfterSend", Napi::Number::New(env, rs.delay_rts_after_send));
  return o;
}

Napi::Value SerialGetRs485(const Napi::CallbackInfo& info) {
  if (!Args(info, 1, "(fd)")) return info.Env().Undefined();
  struct serial_rs485 rs;
  memset(&rs, 0, sizeof rs);
  if (ioctl(Fd(info), TIOCGRS485, &rs) < 0) return ThrowErrno(info.Env(), "TIOCGRS485", errno);
  return Rs485Object(info.Env(), rs);
}

// setRs485(fd, flags, delayRtsBeforeSend, delayRtsAfterSend) -> what the kernel applied: serial_core's
// uart_set_rs485_config sanitises the request (drops flags the driver lacks, clamps delays to 100 ms)
// and copies the result back into the same struct.
Napi::Value SerialSetRs485(const Napi::CallbackInfo& info) {
  if (!Args(info, 4, "(fd, flags, delayRtsBeforeSend, delayRtsAfterSend)")) return info.Env().Undefined();
  struct serial_rs485 rs;
  memset(&rs, 0, sizeof rs);
  rs.flags = info[1].As<Napi::Number>().Uint32Value();
  rs.delay_rts_before_send = info[2].As<Napi::Number>().Uint32Value();
  rs.delay_rts_after_send = info[3].As<Napi::Number>().Uint32Value();
  if (ioctl(Fd(info), TIOCSRS485, &rs) < 0) return ThrowErrno(info.Env(), "TIOCSRS485", errno);
  return Rs485Object(info.Env(), rs);
}

// Watches a line fd for edge events: onEvents([{ rising, timestampNs, seqno }]) per readable event.
class EdgeWatch : public Napi::ObjectWrap<EdgeWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EdgeWatch", {InstanceMethod("close", &EdgeWatch::Close)});
  }

  explicit EdgeWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EdgeWatch>(info) {
    if (!Args(info, 2, "EdgeWatch(lineFd, onEvents)")) return;
    fd_ = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(info.Env(), "uv_poll_init", -rc);
      return;
    }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, &EdgeWatch::OnReadable);
    Ref();
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<EdgeWatch*>(handle->data);
    if (status < 0) return;
    self->Drain();
  }

  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Array events = Napi::Array::New(env);
    struct gpio_v2_line_event ev[16];
    for (;;) {
      ssize_t n = read(fd_, ev, sizeof ev);
      if (n <= 0) break;
      for (size_t i = 0; i < static_cast<size_t>(n) / sizeof ev[0]; i++) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("rising", Napi::Boolean::New(env, ev[i].id == GPIO_V2_LINE_EVENT_RISING_EDGE));
        o.Set("timestampNs", Napi::BigInt::New(env, static_cast<uint64_t>(ev[i].timestamp_ns)));
        o.Set("seqno", Napi::Number::New(env, ev[i].line_seqno));
        events.Set(events.Length(), o);
      }
    }
    if (events.Length() > 0) callback_.Call({events});
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      Unref();
    }
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("wdtSetTimeout", Napi::Function::New(env, WdtSetTimeout));
  exports.Set("wdtGetTimeout", Napi::Function::New(env, WdtGetTimeout));
  exports.Set("wdtGetTimeLeft", Napi::Function::New(env, WdtGetTimeLeft));
  exports.Set("wdtGetSupport", Napi::Function::New(env, WdtGetSupport));
  exports.Set("wdtGetBootStatus", Napi::Function::New(env, WdtGetBootStatus));
  exports.Set("gpioChipInfo", Napi::Function::New(env, GpioChipInfo));
  exports.Set("gpioLineInfo", Napi::Function::New(env, GpioLineInfo));
  exports.Set("gpioRequestLine", Napi::Function::New(env, GpioRequestLine));
  exports.Set("gpioSetConfig", Napi::Function::New(env, GpioSetConfig));
  exports.Set("gpioGetValue", Napi::Function::New(env, GpioGetValue));
  exports.Set("gpioSetValue", Napi::Function::New(env, GpioSetValue));
  exports.Set("serialGetRs485", Napi::Function::New(env, SerialGetRs485));
  exports.Set("serialSetRs485", Napi::Function::New(env, SerialSetRs485));
  exports.Set("EdgeWatch", EdgeWatch::Define(env));
  InitTimex(env, exports);
  InitSocketMark(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(handcheck_ioctl, Init)
