#include "sign.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct kd_signer {
    EVP_PKEY *pkey;
};

/* Several public keys, so a planner key can be rotated: workers trust the
 * old and the new one while planners switch. */
#define KD_VERIFY_KEYS_MAX 8

struct kd_verifier {
    EVP_PKEY *pkey[KD_VERIFY_KEYS_MAX];
    size_t count;
};

static kd_status_t ssl_err(char *err, size_t errsz, kd_status_t st, const char *what)
{
    char msg[256];

    ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
    ERR_clear_error();
    return kd_err(err, errsz, st, "%s: %s", what, msg);
}

static kd_status_t load_key(const char *path, int private, EVP_PKEY **out, char *err,
                            size_t errsz)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pkey;

    if (!f)
        return kd_err(err, errsz, KD_EIO, "%s: cannot open key: %m", path);
    pkey = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                   : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey)
        return ssl_err(err, errsz, KD_EINVAL, path);
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return kd_err(err, errsz, KD_EINVAL, "%s: not an Ed25519 key", path);
    }
    *out = pkey;
    return KD_OK;
}

kd_status_t kd_signer_load(const char *path, kd_signer_t **out, char *err, size_t errsz)
{
    kd_signer_t *s = calloc(1, sizeof *s);
    kd_status_t st;

    if (!s)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((st = load_key(path, 1, &s->pkey, err, errsz)) != KD_OK) {
        free(s);
        return st;
    }
    *out = s;
    return KD_OK;
}

kd_status_t kd_verifier_load(const char *path, kd_verifier_t **out, char *err, size_t errsz)
{
    kd_verifier_t *v = calloc(1, sizeof *v);
    kd_status_t st;

    if (!v)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((st = load_key(path, 0, &v->pkey[0], err, errsz)) != KD_OK) {
        free(v);
        return st;
    }
    v->count = 1;
    *out = v;
    return KD_OK;
}

kd_status_t kd_verifier_add(kd_verifier_t *v, const char *path, char *err, size_t errsz)
{
    if (v->count == KD_VERIFY_KEYS_MAX)
        return kd_err(err, errsz, KD_EINVAL, "%s: at most %d verify keys", path,
                      KD_VERIFY_KEYS_MAX);
    if (load_key(path, 0, &v->pkey[v->count], err, errsz) != KD_OK)
        return KD_EINVAL;
    v->count++;
    return KD_OK;
}

size_t kd_verifier_count(const kd_verifier_t *v)
{
    return v ? v->count : 0;
}

void kd_signer_free(kd_signer_t *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->pkey);
    free(s);
}

void kd_verifier_free(kd_verifier_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->count; i++)
        EVP_PKEY_free(v->pkey[i]);
    free(v);
}

kd_status_t kd_sign(const kd_signer_t *s, const void *data, size_t len,
                    uint8_t sig[KD_SIGNATURE_LEN], char *err, size_t errsz)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = KD_SIGNATURE_LEN;
    kd_status_t st = KD_OK;

    if (!ctx)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    /* Ed25519 signs the message itself: no digest, one-shot API. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, data, len) != 1)
        st = ssl_err(err, errsz, KD_EFAILED, "signing");
    EVP_MD_CTX_free(ctx);
    return st;
}

kd_status_t kd_verify(const kd_verifier_t *v, const void *data, size_t len, const void *sig,
                      size_t siglen, char *err, size_t errsz)
{
    int ok = 0;

    if (!sig || siglen != KD_SIGNATURE_LEN)
        return kd_err(err, errsz, KD_ESIGNATURE, "signature missing or malformed");
    for (size_t i = 0; i < v->count && !ok; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        if (!ctx)
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, v->pkey[i]) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
        EVP_MD_CTX_free(ctx);
    }
    ERR_clear_error();
    return ok ? KD_OK : kd_err(err, errsz, KD_ESIGNATURE, "signature does not verify");
}

static kd_status_t write_pem(const char *path, EVP_PKEY *pkey, int private, char *err,
                             size_t errsz)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, private ? 0600 : 0644);
    FILE *f;
    int ok;

    if (fd < 0)
        return kd_err(err, errsz, KD_EIO, "%s: cannot create: %m", path);
    if (!(f = fdopen(fd, "w"))) {
        close(fd);
        return kd_err(err, errsz, KD_EIO, "%s: %m", path);
    }
    ok = private ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_PUBKEY(f, pkey);
    if (fclose(f) != 0)
        ok = 0;
    return ok ? KD_OK : ssl_err(err, errsz, KD_EIO, path);
}

kd_status_t kd_keygen(const char *private_path, const char *public_path, char *err, size_t errsz)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    kd_status_t st;

    if (!pkey)
        return ssl_err(err, errsz, KD_EFAILED, "generating an Ed25519 key");
    st = write_pem(private_path, pkey, 1, err, errsz);
    if (st == KD_OK && (st = write_pem(public_path, pkey, 0, err, errsz)) != KD_OK)
        unlink(private_path);
    EVP_PKEY_free(pkey);
    return st;
}
