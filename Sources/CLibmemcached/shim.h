#ifndef CLIBMEMCACHED_SHIM_H
#define CLIBMEMCACHED_SHIM_H
#include <libmemcached/memcached.h>
#include <libmemcached/util.h>
#endif
