/* PyTorch checkpoint reader (torch.save zip format: pytorch_model.bin, *.pt, *.pth) that
 * needs neither torch nor Python's pickle.
 *
 * The archive holds <prefix>/data.pkl (the object graph) and <prefix>/data/<key> (raw
 * storages). data.pkl runs in the restricted VM of pickle.h with a whitelist of globals:
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter,
 * _rebuild_parameter_with_state (Python attributes dropped) and the typed storage classes
 * torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage. Any other global
 * is refused before anything else happens, with an error naming it ("posix.system").
 *
 * The result must be a dict of tensors, possibly nested ({"state_dict": {...}}): nested
 * keys are joined with dots. Every tensor is checked against its storage (offset + extent
 * inside the storage bytes) and points into the copy-on-write mapping of the file.
 */
#ifndef VC_IO_TORCH_BIN_H
#define VC_IO_TORCH_BIN_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"
#include "io/mapfile.h"
#include "vc.h"

typedef struct {
    const char *name;              /* dotted name, UTF-8 as stored (not validated), NUL-terminated */
    size_t name_len;
    vc_io_dtype dtype;             /* storage element type */
    int ndim;
    const int64_t *shape, *stride; /* stride in elements, all >= 0 */
    size_t numel;
    const unsigned char *data;     /* element (0,...,0) inside the mapping */
    int contiguous;                /* C-contiguous: shape/stride describe a dense block */
    size_t alias_of;               /* index of an earlier entry that is the same tensor object
                                      (the pickle referenced it twice), or SIZE_MAX */
} vc_tb_tensor;

typedef struct vc_torch_bin vc_torch_bin;

/* Opens and validates `path`. Errors name the file and, where one is at fault, the tensor
 * or the pickle global. */
vc_status vc_tb_open(const char *path, vc_torch_bin **out);
void vc_tb_close(vc_torch_bin *tb);

size_t vc_tb_count(const vc_torch_bin *tb);
const vc_tb_tensor *vc_tb_tensor_at(const vc_torch_bin *tb, size_t i);
/* Hands the mapping to the caller (see vc_st_take_mapping); data pointers stay valid until
 * the caller closes it. */
vc_mapfile *vc_tb_take_mapping(vc_torch_bin *tb);

#endif
