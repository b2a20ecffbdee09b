/* Ed25519 signing of commands: good signatures verify, forged ones do not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sign.h"

static char dir[4096];

static void path(char *out, size_t outsz, const char *name)
{
    snprintf(out, outsz, "%s/%s", dir, name);
}

static void test_sign_and_verify(void)
{
    char priv[4200], pub[4200], priv2[4200], pub2[4200], err[512];
    kd_signer_t *s = NULL, *s2 = NULL;
    kd_verifier_t *v = NULL;
    uint8_t sig[KD_SIGNATURE_LEN], sig2[KD_SIGNATURE_LEN];
    const char msg[] = "step web-01 ApplicationStart";

    path(priv, sizeof priv, "a.key");
    path(pub, sizeof pub, "a.pub");
    path(priv2, sizeof priv2, "b.key");
    path(pub2, sizeof pub2, "b.pub");
    CHECK_MSG(kd_keygen(priv, pub, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kd_keygen(priv2, pub2, err, sizeof err) == KD_OK);
    /* Never overwrites a key. */
    CHECK(kd_keygen(priv, pub, err, sizeof err) == KD_EIO);
    CHECK(access(priv, R_OK) == 0);

    CHECK(kd_signer_load(priv, &s, err, sizeof err) == KD_OK);
    CHECK(kd_signer_load(priv2, &s2, err, sizeof err) == KD_OK);
    CHECK(kd_verifier_load(pub, &v, err, sizeof err) == KD_OK);
    if (!s || !s2 || !v)
        goto out;
    CHECK(kd_sign(s, msg, sizeof msg, sig, err, sizeof err) == KD_OK);
    CHECK(kd_verify(v, msg, sizeof msg, sig, sizeof sig, err, sizeof err) == KD_OK);
    /* A changed byte, a wrong key, a truncated or missing signature all fail. */
    CHECK(kd_verify(v, "step web-02 ApplicationStart", sizeof msg, sig, sizeof sig, err,
                    sizeof err) == KD_ESIGNATURE);
    CHECK(kd_sign(s2, msg, sizeof msg, sig2, err, sizeof err) == KD_OK);
    CHECK(kd_verify(v, msg, sizeof msg, sig2, sizeof sig2, err, sizeof err) == KD_ESIGNATURE);
    CHECK(kd_verify(v, msg, sizeof msg, sig, 10, err, sizeof err) == KD_ESIGNATURE);
    CHECK(kd_verify(v, msg, sizeof msg, NULL, 0, err, sizeof err) == KD_ESIGNATURE);
    /* Key rotation: with both public keys, either signature verifies. */
    CHECK(kd_verifier_count(v) == 1);
    CHECK_MSG(kd_verifier_add(v, pub2, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kd_verifier_count(v) == 2);
    CHECK(kd_verify(v, msg, sizeof msg, sig, sizeof sig, err, sizeof err) == KD_OK);
    CHECK(kd_verify(v, msg, sizeof msg, sig2, sizeof sig2, err, sizeof err) == KD_OK);
    CHECK(kd_verifier_add(v, priv, err, sizeof err) != KD_OK); /* not a public key */
    CHECK(kd_verifier_count(v) == 2);
    /* A public key is not a private key. */
    CHECK(kd_signer_load(pub, &s2 /* unchanged on failure */, err, sizeof err) != KD_OK);
out:
    kd_signer_free(s);
    kd_signer_free(s2);
    kd_verifier_free(v);
    unlink(priv);
    unlink(pub);
    unlink(priv2);
    unlink(pub2);
}

int main(void)
{
    const char *tmp = getenv("KD_TEST_TMP");

    snprintf(dir, sizeof dir, "%s/signXXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_sign_and_verify);
    rmdir(dir);
    return check_summary();
}
