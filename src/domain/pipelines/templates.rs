//! The three templates of `GET /pipeline-templates` (domain.md §C6), as the reference
//! answers them. Clients copy their stages into `POST /pipelines`; the release flow's
//! webhook has no URL, so its stage is skipped until one is set.

use serde_json::{json, Value};

pub fn all() -> Value {
    json!([
        {
            "id": "review_flow",
            "name": "代码评审流程",
            "description": "标准化代码评审工作流：AI 分析 → 人工审批 → 完成确认",
            "pipeline_type": "review_flow",
            "stages": [
                {"id": "stage_ai_review", "name": "AI 代码分析", "type": "ai_task",
                 "config": {"task_title": "代码评审分析", "description": "请对提交的代码进行分析和评审"},
                 "next_stage_id": "stage_approval"},
                {"id": "stage_approval", "name": "人工审批", "type": "approval",
                 "config": {"title": "代码评审审批", "description": "请审批 AI 分析结果"},
                 "next_stage_id": "stage_confirm"},
                {"id": "stage_confirm", "name": "完成确认", "type": "manual",
                 "config": {"message": "请确认代码评审已完成"}, "next_stage_id": null}
            ],
            "trigger_config": {"trigger_type": "manual"}
        },
        {
            "id": "onboarding",
            "name": "新员工入职流程",
            "description": "自动化新员工入职：环境配置 → 权限申请 → 培训任务",
            "pipeline_type": "onboarding",
            "stages": [
                {"id": "stage_setup", "name": "环境配置", "type": "ai_task",
                 "config": {"task_title": "配置开发环境", "description": "为新员工配置开发环境和工具"},
                 "next_stage_id": "stage_permissions"},
                {"id": "stage_permissions", "name": "权限申请", "type": "approval",
                 "config": {"title": "系统权限申请", "description": "审批新员工系统访问权限"},
                 "next_stage_id": "stage_training"},
                {"id": "stage_training", "name": "培训任务", "type": "ai_task",
                 "config": {"task_title": "完成入职培训", "description": "完成公司必修培训课程"},
                 "next_stage_id": null}
            ],
            "trigger_config": {"trigger_type": "manual"}
        },
        {
            "id": "release_flow",
            "name": "发布流程",
            "description": "标准化软件发布：测试验证 → 审批 → Webhook 通知 → 完成",
            "pipeline_type": "release_flow",
            "stages": [
                {"id": "stage_test", "name": "测试验证", "type": "ai_task",
                 "config": {"task_title": "执行发布前测试", "description": "验证发布版本的功能和性能"},
                 "next_stage_id": "stage_approve"},
                {"id": "stage_approve", "name": "发布审批", "type": "approval",
                 "config": {"title": "发布审批", "description": "批准本次软件发布"},
                 "next_stage_id": "stage_notify"},
                {"id": "stage_notify", "name": "通知外部系统", "type": "webhook",
                 "config": {"url": "", "method": "POST", "headers": {}}, "next_stage_id": null}
            ],
            "trigger_config": {"trigger_type": "manual"}
        }
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_passes_the_checks() {
        for template in super::all().as_array().unwrap() {
            let mut invalid = crate::domain::support::validation::Invalid::default();
            crate::domain::pipelines::stages::check(
                template["stages"].as_array().unwrap(),
                &mut invalid,
            );
            assert!(invalid.finish().is_ok(), "{}", template["id"]);
        }
    }
}
