/* The deployment spec parser (kdeploy create -f) on arbitrary bytes. */
#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Kdeploy__V1__DeploymentSpec *spec = NULL;
    char err[4096];

    if (kd_spec_parse("fuzz.yml", (const char *)data, size, &spec, err, sizeof err) == KD_OK)
        kd_spec_free(spec);
    return 0;
}
