#include "workflow.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* §1 Rolling deployment, no load balancer. */
static const kd_event_t rolling[] = {
    KD_EVENT(DownloadBundle), KD_EVENT(ApplicationStop), KD_EVENT(BeforeInstall),
    KD_EVENT(Install), KD_EVENT(AfterInstall), KD_EVENT(ApplicationStart),
    KD_EVENT(ValidateService),
};

/* Its rollback: the failed revision's stop, then the previous revision
 * from the host's cache (no download). */
static const kd_event_t rolling_rollback[] = {
    KD_EVENT(ApplicationStop), KD_EVENT(BeforeInstall), KD_EVENT(Install),
    KD_EVENT(AfterInstall), KD_EVENT(ApplicationStart), KD_EVENT(ValidateService),
};

/* §2 Rolling deployment with a load balancer. */
static const kd_event_t rolling_lb[] = {
    KD_EVENT(DownloadBundle), KD_EVENT(BeforeBlockTraffic), KD_EVENT(BlockTraffic),
    KD_EVENT(AfterBlockTraffic), KD_EVENT(ApplicationStop), KD_EVENT(BeforeInstall),
    KD_EVENT(Install), KD_EVENT(AfterInstall), KD_EVENT(ApplicationStart),
    KD_EVENT(ValidateService), KD_EVENT(BeforeAllowTraffic), KD_EVENT(AllowTraffic),
    KD_EVENT(AfterAllowTraffic),
};

static const kd_event_t rolling_lb_rollback[] = {
    KD_EVENT(BeforeBlockTraffic), KD_EVENT(BlockTraffic), KD_EVENT(AfterBlockTraffic),
    KD_EVENT(ApplicationStop), KD_EVENT(BeforeInstall), KD_EVENT(Install),
    KD_EVENT(AfterInstall), KD_EVENT(ApplicationStart), KD_EVENT(ValidateService),
    KD_EVENT(BeforeAllowTraffic), KD_EVENT(AllowTraffic), KD_EVENT(AfterAllowTraffic),
};

/* §3 Blue-green: the idle group's hosts, the four traffic hooks skipped,
 * then the swap. */
static const kd_event_t blue_green[] = {
    KD_EVENT(DownloadBundle), KD_EVENT(ApplicationStop), KD_EVENT(BeforeInstall),
    KD_EVENT(Install), KD_EVENT(AfterInstall), KD_EVENT(ApplicationStart),
    KD_EVENT(ValidateService),
};

/* Its rollback: check the group that served before, then swap back. */
static const kd_event_t blue_green_rollback[] = {
    KD_EVENT(ValidateService),
};

static const kd_workflow_t workflows[] = {
    {"rolling", rolling, N(rolling), false},
    {"rolling rollback", rolling_rollback, N(rolling_rollback), false},
    {"rolling with load balancer", rolling_lb, N(rolling_lb), false},
    {"rolling with load balancer rollback", rolling_lb_rollback, N(rolling_lb_rollback), false},
    {"blue-green", blue_green, N(blue_green), true},
    {"blue-green rollback", blue_green_rollback, N(blue_green_rollback), true},
};

const kd_workflow_t *kd_workflow_for(const Kdeploy__V1__DeploymentSpec *spec, bool rollback)
{
    size_t base = 0;

    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        base = 4;
    else if (spec->load_balancer && spec->load_balancer->server_group &&
             *spec->load_balancer->server_group)
        base = 2;
    return &workflows[base + (rollback ? 1 : 0)];
}
