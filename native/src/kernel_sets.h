// The KernelSets class of the addon (kernel_sets.cc), registered by the module's Init in nfqueue.cc.
#pragma once

#include <napi.h>

Napi::Function DefineKernelSets(Napi::Env env);
